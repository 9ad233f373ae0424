-- stockpipe: snowflake-only
-- The account-level objects, created once by the set-up role (ACCOUNTADMIN by default:
-- resource monitors need it): the database, an XS virtual warehouse that suspends after
-- {{ auto_suspend_seconds }} s idle and resumes on the next query, a resource monitor that
-- suspends it past the monthly credit quota, and the three runtime roles.
-- Re-running changes nothing; the ALTERs bring an existing warehouse and monitor to the
-- settings (STOCKPIPE_WAREHOUSE__AUTO_SUSPEND_SECONDS, __MONTHLY_CREDIT_QUOTA).
create database if not exists {{ database }};
create warehouse if not exists {{ warehouse }}
    warehouse_size = xsmall auto_suspend = {{ auto_suspend_seconds }} auto_resume = true
    initially_suspended = true;
alter warehouse {{ warehouse }} set auto_suspend = {{ auto_suspend_seconds }} auto_resume = true;
create resource monitor if not exists {{ resource_monitor }}
    with credit_quota = {{ monthly_credit_quota }} frequency = monthly
    start_timestamp = immediately
    triggers on 80 percent do notify on 100 percent do suspend on 110 percent do suspend_immediate;
alter resource monitor {{ resource_monitor }} set credit_quota = {{ monthly_credit_quota }};
alter warehouse {{ warehouse }} set resource_monitor = {{ resource_monitor }};
-- LOADER: the drain. TRANSFORMER: trends and alerts. READER: validation, the dashboard.
create role if not exists {{ loader_role }};
create role if not exists {{ transformer_role }};
create role if not exists {{ reader_role }};
-- The custom roles under SYSADMIN, as Snowflake recommends, so administrators see their
-- objects. Grant each role to the user that runs it: GRANT ROLE ... TO USER ... .
grant role {{ loader_role }} to role SYSADMIN;
grant role {{ transformer_role }} to role SYSADMIN;
grant role {{ reader_role }} to role SYSADMIN;
