-- stockpipe: snowflake-only
-- stockpipe: as {{ account_admin_role }}
-- A resource monitor that suspends the warehouse past the monthly credit quota
-- (STOCKPIPE_WAREHOUSE__MONTHLY_CREDIT_QUOTA). Only ACCOUNTADMIN may create a resource
-- monitor and assign it to a warehouse: these statements, and only these, run as
-- STOCKPIPE_WAREHOUSE__ACCOUNT_ADMIN_ROLE.
create resource monitor if not exists {{ resource_monitor }}
    with credit_quota = {{ monthly_credit_quota }} frequency = monthly
    start_timestamp = immediately
    triggers on 80 percent do notify on 100 percent do suspend on 110 percent do suspend_immediate;
alter resource monitor {{ resource_monitor }} set credit_quota = {{ monthly_credit_quota }};
alter warehouse {{ warehouse }} set resource_monitor = {{ resource_monitor }};
