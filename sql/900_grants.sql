-- stockpipe: snowflake-only
-- Least privilege: each runtime role gets what its statements need and nothing else; none
-- may create, alter or drop anything (the set-up role owns every object). Every statement
-- each process issues is checked against these grants by
-- tests/snowflake/test_privileges.py. Future grants: objects a later set-up adds.
--   LOADER      the drain: reads and writes RAW's tables, PUTs and COPYs on the batch stage
--   TRANSFORMER trends and alerts: reads RAW and STAGING, writes MARTS' tables
--   READER      validation and the dashboard: reads RAW, STAGING and MARTS
grant usage on warehouse {{ warehouse }} to role {{ loader_role }};
grant usage on warehouse {{ warehouse }} to role {{ transformer_role }};
grant usage on warehouse {{ warehouse }} to role {{ reader_role }};
grant usage on database {{ database }} to role {{ loader_role }};
grant usage on database {{ database }} to role {{ transformer_role }};
grant usage on database {{ database }} to role {{ reader_role }};

grant usage on schema {{ database }}.RAW to role {{ loader_role }};
grant select, insert, update, delete on table {{ database }}.RAW.STOCK_PRICES to role {{ loader_role }};
grant select, insert, update, delete on table {{ database }}.RAW.KAFKA_OFFSETS to role {{ loader_role }};
grant select, insert, delete on table {{ database }}.RAW.STOCK_PRICES_BATCH to role {{ loader_role }};
grant select on table {{ database }}.RAW.SQL_APPLIED to role {{ loader_role }};
grant read, write on stage {{ database }}.RAW.STOCK_PRICES_STAGE to role {{ loader_role }};

grant usage on schema {{ database }}.RAW to role {{ transformer_role }};
grant select on table {{ database }}.RAW.STOCK_PRICES to role {{ transformer_role }};
grant select on table {{ database }}.RAW.SQL_APPLIED to role {{ transformer_role }};
grant usage on schema {{ database }}.STAGING to role {{ transformer_role }};
grant select on all views in schema {{ database }}.STAGING to role {{ transformer_role }};
grant select on future views in schema {{ database }}.STAGING to role {{ transformer_role }};
grant usage on schema {{ database }}.MARTS to role {{ transformer_role }};
grant select, insert, update, delete on all tables in schema {{ database }}.MARTS to role {{ transformer_role }};
grant select, insert, update, delete on future tables in schema {{ database }}.MARTS to role {{ transformer_role }};
grant select on all views in schema {{ database }}.MARTS to role {{ transformer_role }};
grant select on future views in schema {{ database }}.MARTS to role {{ transformer_role }};

grant usage on schema {{ database }}.RAW to role {{ reader_role }};
grant select on table {{ database }}.RAW.STOCK_PRICES to role {{ reader_role }};
grant select on table {{ database }}.RAW.SQL_APPLIED to role {{ reader_role }};
grant usage on schema {{ database }}.STAGING to role {{ reader_role }};
grant select on all views in schema {{ database }}.STAGING to role {{ reader_role }};
grant select on future views in schema {{ database }}.STAGING to role {{ reader_role }};
grant usage on schema {{ database }}.MARTS to role {{ reader_role }};
grant select on all tables in schema {{ database }}.MARTS to role {{ reader_role }};
grant select on future tables in schema {{ database }}.MARTS to role {{ reader_role }};
grant select on all views in schema {{ database }}.MARTS to role {{ reader_role }};
grant select on future views in schema {{ database }}.MARTS to role {{ reader_role }};
