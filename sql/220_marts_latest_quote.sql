-- The latest bar per symbol with its session's figures: what a watchlist screen shows.
--   change_on_day_pct = (last close / previous session's close - 1) * 100
--   change_vs_open_pct = (last close / session open - 1) * 100
create or replace view MARTS.LATEST_QUOTE as
with

latest_bar as (
    select *
    from MARTS.MINUTE_MOVING_AVERAGES
    qualify row_number() over (partition by symbol order by ts desc) = 1
),

sessions as (
    select * from MARTS.DAILY_OHLCV
)

select
    l.symbol,
    l.ts,
    l.session_date,
    l.close as last_close,
    l.ma5,
    l.ma20,
    s.open as session_open,
    s.high as session_high,
    s.low as session_low,
    s.volume as session_volume,
    s.vwap as session_vwap,
    s.bar_count,
    s.change_pct as change_on_day_pct,
    (l.close / s.open - 1) * 100 as change_vs_open_pct
from latest_bar as l
join sessions as s
  on s.symbol = l.symbol and s.session_date = l.session_date;
