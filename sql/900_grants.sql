-- stockpipe: snowflake-only
-- Role-based access on Snowflake (skipped on the embedded warehouse, which has no RBAC):
--   STOCKPIPE_LOADER      writes RAW (the drain)
--   STOCKPIPE_TRANSFORMER reads RAW, builds STAGING and MARTS (sql apply, trends)
--   STOCKPIPE_READER      reads MARTS (dashboards, analysts)
-- {{ database }} is STOCKPIPE_WAREHOUSE__DATABASE, validated as a plain identifier.
-- Run as a role that may create roles and grant on the database (e.g. SECURITYADMIN).
create role if not exists STOCKPIPE_LOADER;
create role if not exists STOCKPIPE_TRANSFORMER;
create role if not exists STOCKPIPE_READER;
grant usage on database {{ database }} to role STOCKPIPE_LOADER;
grant usage on database {{ database }} to role STOCKPIPE_TRANSFORMER;
grant usage on database {{ database }} to role STOCKPIPE_READER;
grant usage on schema {{ database }}.RAW to role STOCKPIPE_LOADER;
grant select, insert, update, delete on all tables in schema {{ database }}.RAW to role STOCKPIPE_LOADER;
grant select, insert, update, delete on future tables in schema {{ database }}.RAW to role STOCKPIPE_LOADER;
grant create table on schema {{ database }}.RAW to role STOCKPIPE_LOADER;
grant usage on schema {{ database }}.RAW to role STOCKPIPE_TRANSFORMER;
grant select on all tables in schema {{ database }}.RAW to role STOCKPIPE_TRANSFORMER;
grant select on future tables in schema {{ database }}.RAW to role STOCKPIPE_TRANSFORMER;
grant usage, create view, create table on schema {{ database }}.STAGING to role STOCKPIPE_TRANSFORMER;
grant usage, create view, create table on schema {{ database }}.MARTS to role STOCKPIPE_TRANSFORMER;
grant usage on schema {{ database }}.MARTS to role STOCKPIPE_READER;
grant select on all views in schema {{ database }}.MARTS to role STOCKPIPE_READER;
grant select on future views in schema {{ database }}.MARTS to role STOCKPIPE_READER;
grant select on all tables in schema {{ database }}.MARTS to role STOCKPIPE_READER;
grant select on future tables in schema {{ database }}.MARTS to role STOCKPIPE_READER;
