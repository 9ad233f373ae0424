-- The computation behind MARTS.DAILY_BARS, for the sessions being refreshed.
-- Parameters: the first and last bar instant (UTC) of the sessions to rebuild, the
-- refresh time; {{ symbols }} is a list of bound parameters for the symbols to rebuild.
--   open  = first bar's open (by ts);  close = last bar's close (by ts)
--   high  = max(high);  low = min(low);  volume = sum(volume);  bar_count = count(*)
--   vwap  = sum((high + low + close) / 3 * volume) / sum(volume); NULL when volume is 0
insert into MARTS.DAILY_BARS (
    symbol, session_date, open, high, low, close, volume, vwap, bar_count,
    first_bar_ts, last_bar_ts, refreshed_at
)
with

minute_bars as (
    select *
    from STAGING.VALID_BARS
    where bar_interval = '1m'
      and ts >= %s and ts <= %s
      and symbol in ({{ symbols }})
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
)

select
    symbol,
    session_date,
    min(session_open) as open,
    max(high) as high,
    min(low) as low,
    min(session_close) as close,
    sum(volume) as volume,
    sum((high + low + close) / 3 * volume) / nullif(sum(volume), 0) as vwap,
    count(*) as bar_count,
    min(ts) as first_bar_ts,
    max(ts) as last_bar_ts,
    %s as refreshed_at
from ordered
group by symbol, session_date
