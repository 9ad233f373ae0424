-- stockpipe: snowflake-only
-- Least privilege: each runtime role gets what its statements need and nothing else. The
-- set-up role (SYSADMIN) owns the database, the schemas and RAW's objects. Every statement each
-- process issues is checked against these grants by tests/snowflake/test_pipeline.py.
--   LOADER      the drain: reads and writes RAW's tables, PUTs and COPYs on the batch stage;
--               creates, alters and drops nothing
--   TRANSFORMER the trend build (dbt) and alerts: reads RAW, takes in RAW.LOAD_LOG's
--               entries, creates and replaces its models in STAGING and MARTS (it owns
--               them, and grants READER select on each through dbt's grants config),
--               records sent alerts
--   READER      validation and the dashboard: reads RAW, STAGING and MARTS
grant usage on warehouse {{ warehouse }} to role {{ loader_role }};
grant usage on warehouse {{ warehouse }} to role {{ transformer_role }};
grant usage on warehouse {{ warehouse }} to role {{ reader_role }};
grant usage on database {{ database }} to role {{ loader_role }};
grant usage on database {{ database }} to role {{ transformer_role }};
grant usage on database {{ database }} to role {{ reader_role }};

grant usage on schema {{ database }}.RAW to role {{ loader_role }};
-- DELETE: a strictly newer fetch of a bar replaces the stored one (delete, then insert).
grant select, insert, delete on table {{ database }}.RAW.STOCK_PRICES to role {{ loader_role }};
-- UPDATE: the compare-and-set of the offsets; DELETE: a chosen reset (--reset-offsets).
grant select, insert, update, delete on table {{ database }}.RAW.KAFKA_OFFSETS to role {{ loader_role }};
grant select, insert, delete on table {{ database }}.RAW.STOCK_PRICES_BATCH to role {{ loader_role }};
grant insert on table {{ database }}.RAW.LOAD_LOG to role {{ loader_role }};
grant select on table {{ database }}.RAW.SQL_APPLIED to role {{ loader_role }};
grant read, write on stage {{ database }}.RAW.STOCK_PRICES_STAGE to role {{ loader_role }};

grant usage on schema {{ database }}.RAW to role {{ transformer_role }};
grant select on table {{ database }}.RAW.STOCK_PRICES to role {{ transformer_role }};
grant select, delete on table {{ database }}.RAW.LOAD_LOG to role {{ transformer_role }};
grant select on table {{ database }}.RAW.SQL_APPLIED to role {{ transformer_role }};
grant usage, create table, create view on schema {{ database }}.STAGING to role {{ transformer_role }};
-- The marts are tables (sql/dbt_project.yml); only STAGING holds views.
grant usage, create table on schema {{ database }}.MARTS to role {{ transformer_role }};
grant select, insert on table {{ database }}.MARTS.ALERTS_SENT to role {{ transformer_role }};

grant usage on schema {{ database }}.RAW to role {{ reader_role }};
grant select on table {{ database }}.RAW.STOCK_PRICES to role {{ reader_role }};
grant select on table {{ database }}.RAW.SQL_APPLIED to role {{ reader_role }};
grant usage on schema {{ database }}.STAGING to role {{ reader_role }};
grant usage on schema {{ database }}.MARTS to role {{ reader_role }};
grant select on table {{ database }}.MARTS.ALERTS_SENT to role {{ reader_role }};
