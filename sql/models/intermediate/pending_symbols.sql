-- Per symbol with pending load-log entries, the first session to rebuild: the incremental
-- marts replace that symbol's rows from this session on (macros/replace_from_pending.sql).
with

pending_loads as (
    select * from {{ ref("pending_loads") }}
),

final as (
    select
        symbol,
        min(first_session) as first_session
    from pending_loads
    group by symbol
)

select * from final
