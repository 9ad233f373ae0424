-- stockpipe: snowflake-only
-- The database and the virtual warehouse, owned by the set-up role (SYSADMIN by default,
-- as Snowflake recommends for the objects of an application): an XS warehouse that
-- suspends after {{ auto_suspend_seconds }} s idle, resumes on the next query, and cancels
-- any statement that runs longer than {{ statement_timeout_seconds }} s (a runaway query
-- would otherwise bill until the resource monitor stops the warehouse).
-- Re-running changes nothing; the ALTER brings an existing warehouse to the settings
-- (STOCKPIPE_WAREHOUSE__AUTO_SUSPEND_SECONDS, __STATEMENT_TIMEOUT_SECONDS).
create database if not exists {{ database }};
create warehouse if not exists {{ warehouse }}
    warehouse_size = xsmall auto_suspend = {{ auto_suspend_seconds }} auto_resume = true
    initially_suspended = true statement_timeout_in_seconds = {{ statement_timeout_seconds }};
alter warehouse {{ warehouse }} set auto_suspend = {{ auto_suspend_seconds }} auto_resume = true
    statement_timeout_in_seconds = {{ statement_timeout_seconds }};
