-- The latest bar per symbol with its session's figures: what a watchlist screen shows.
--   change_on_day_pct = (last close / previous session's close - 1) * 100
--   change_vs_open_pct = (last close / session open - 1) * 100
--   ma5 / ma20 = as in MARTS.MINUTE_MOVING_AVERAGES, computed here over the two newest
--   sessions' bars only (enough for 20 bars even at the open), so reading the latest
--   quotes does not scan the whole history.
create or replace view MARTS.LATEST_QUOTE as
with

sessions as (
    select * from MARTS.DAILY_OHLCV
),

recent_sessions as (
    select symbol, session_date, first_bar_ts, last_bar_ts
    from sessions
    qualify row_number() over (partition by symbol order by session_date desc) <= 2
),

bounds as (
    select min(first_bar_ts) as first_ts, max(last_bar_ts) as last_ts from recent_sessions
),

recent_bars as (
    select v.symbol, v.ts, v.session_date, v.close
    from STAGING.VALID_BARS as v
    join bounds as b on v.ts between b.first_ts and b.last_ts
    where v.bar_interval = '1m'
),

averages as (
    select
        symbol,
        ts,
        session_date,
        close,
        avg(close) over (partition by symbol order by ts rows between 4 preceding and current row) as avg5,
        count(close) over (partition by symbol order by ts rows between 4 preceding and current row) as n5,
        avg(close) over (partition by symbol order by ts rows between 19 preceding and current row) as avg20,
        count(close) over (partition by symbol order by ts rows between 19 preceding and current row) as n20
    from recent_bars
),

latest_bar as (
    select
        symbol,
        ts,
        session_date,
        close,
        case when n5 = 5 then avg5 end as ma5,
        case when n20 = 20 then avg20 end as ma20
    from averages
    qualify row_number() over (partition by symbol order by ts desc) = 1
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
