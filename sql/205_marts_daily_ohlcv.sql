-- Daily bars with the change on the day.
--   change_pct = (close / previous session's close - 1) * 100, NULL for a symbol's first session
create or replace view MARTS.DAILY_OHLCV as
with

daily as (
    select * from MARTS.DAILY_BARS
)

select
    symbol,
    session_date,
    open,
    high,
    low,
    close,
    volume,
    vwap,
    bar_count,
    first_bar_ts,
    last_bar_ts,
    lag(close) over (partition by symbol order by session_date) as previous_close,
    (close / lag(close) over (partition by symbol order by session_date) - 1) * 100 as change_pct
from daily;
