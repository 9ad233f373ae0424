-- The biggest moves of the latest session (the newest session_date in the marts), ranked
-- by the absolute day change; move_rank 1 moved most. Symbols without a previous close (their
-- first session) have no change and are left out.
create or replace view MARTS.TOP_MOVERS as
with

trends as (
    select * from MARTS.DAILY_TRENDS
),

latest_session as (
    select max(session_date) as session_date from trends
),

moves as (
    select t.symbol, t.session_date, t.close, t.previous_close, t.change_pct, t.volume
    from trends as t
    join latest_session as l on t.session_date = l.session_date
    where t.change_pct is not null
)

select
    row_number() over (order by abs(change_pct) desc, symbol) as move_rank,
    symbol,
    session_date,
    close,
    previous_close,
    change_pct,
    case when change_pct >= 0 then 'up' else 'down' end as direction,
    volume
from moves;
