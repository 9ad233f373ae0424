-- Daily bars per exchange session, from 1-minute bars.
--   open   = the session's first bar's open;  close = its last bar's close
--   high   = max(high);  low = min(low);  volume = sum(volume);  bar_count = bars seen
--   vwap   = sum(typical_price * volume) / sum(volume),  typical_price = (high + low + close) / 3
--            (NULL when the session traded no volume)
--   change_pct = (close / previous session's close - 1) * 100, NULL for the first session
create or replace view MARTS.DAILY_OHLCV as
with

minute_bars as (
    select * from STAGING.STOCK_PRICES where bar_interval = '1m'
),

ordered as (
    select
        *,
        first_value(open) over (
            partition by symbol, session_date order by ts
            rows between unbounded preceding and unbounded following
        ) as session_open,
        last_value(close) over (
            partition by symbol, session_date order by ts
            rows between unbounded preceding and unbounded following
        ) as session_close
    from minute_bars
),

daily as (
    select
        symbol,
        session_date,
        min(session_open) as open,
        max(high) as high,
        min(low) as low,
        min(session_close) as close,
        sum(volume) as volume,
        sum(typical_price * volume) / nullif(sum(volume), 0) as vwap,
        count(*) as bar_count,
        min(ts) as first_bar_ts,
        max(ts) as last_bar_ts
    from ordered
    group by symbol, session_date
)

select
    *,
    lag(close) over (partition by symbol order by session_date) as previous_close,
    (close / lag(close) over (partition by symbol order by session_date) - 1) * 100 as change_pct
from daily;
