-- stockpipe: snowflake-only
-- stockpipe: as {{ user_admin_role }}
-- The three runtime roles, created by the role that manages roles (USERADMIN by default;
-- STOCKPIPE_WAREHOUSE__USER_ADMIN_ROLE). LOADER: the drain. TRANSFORMER: trends and
-- alerts. READER: validation, the dashboard.
create role if not exists {{ loader_role }};
create role if not exists {{ transformer_role }};
create role if not exists {{ reader_role }};
-- The custom roles under SYSADMIN, as Snowflake recommends, so administrators see their
-- objects. Grant each role to the user that runs it: GRANT ROLE ... TO USER ... .
grant role {{ loader_role }} to role SYSADMIN;
grant role {{ transformer_role }} to role SYSADMIN;
grant role {{ reader_role }} to role SYSADMIN;
