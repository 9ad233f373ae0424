-- The load log's entries at the start of this build: a snapshot, so the entries deleted
-- at its end (macros/take_in_load_log.sql, when every model and test succeeded) are
-- exactly those this build took in. A commit that lands during the build stays in the log
-- for the next one.
with

load_log as (
    select * from {{ source("raw", "load_log") }}
),

final as (
    select
        load_id,
        symbol,
        first_ts,
        last_ts,
        bar_count,
        logged_at,
        {{ exchange_date('first_ts') }} as first_session
    from load_log
)

select * from final
