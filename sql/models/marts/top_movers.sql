-- The biggest moves of the latest session (the newest session_date in the marts), ranked
-- by the absolute day change; move_rank 1 moved most. Symbols without a previous close
-- (their first session) have no change and are left out.
with

daily_trends as (
    select * from {{ ref("daily_trends") }}
),

latest_session as (
    select max(session_date) as session_date from daily_trends
),

moves as (
    select
        daily_trends.symbol,
        daily_trends.session_date,
        daily_trends.close,
        daily_trends.previous_close,
        daily_trends.change_pct,
        daily_trends.volume
    from daily_trends
    inner join latest_session
        on daily_trends.session_date = latest_session.session_date
    where daily_trends.change_pct is not null
),

final as (
    select
        symbol,
        session_date,
        close,
        previous_close,
        change_pct,
        volume,
        row_number() over (order by abs(change_pct) desc, symbol) as move_rank,
        case when change_pct >= 0 then 'up' else 'down' end as direction
    from moves
)

select * from final
