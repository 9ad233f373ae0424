-- Clean 1-minute bars.
--   * one row per (symbol, ts, bar_interval): the latest fetch wins;
--   * invalid bars are filtered: non-positive prices, negative volume, high < low,
--     high < max(open, close), low > min(open, close);
--   * is_spike: close moved more than 20 % from the previous bar's close (kept, flagged);
--   * session_date / local_ts: the exchange's date and wall-clock time (America/New_York);
--   * ingest_lag_seconds: from the bar's end to its load.
create or replace view STAGING.STOCK_PRICES as
with

raw_bars as (
    select * from RAW.STOCK_PRICES
),

latest_fetch as (
    select *
    from raw_bars
    qualify row_number() over (
        partition by symbol, ts, bar_interval order by fetched_at desc, kafka_offset desc
    ) = 1
),

valid_bars as (
    select *
    from latest_fetch
    where open > 0 and high > 0 and low > 0 and close > 0
      and volume >= 0
      and high >= low
      and high >= greatest(open, close)
      and low <= least(open, close)
),

with_previous as (
    select
        *,
        lag(close) over (partition by symbol, bar_interval order by ts) as previous_close
    from valid_bars
)

select
    symbol,
    ts,
    bar_interval,
    convert_timezone('UTC', 'America/New_York', ts) as local_ts,
    to_date(convert_timezone('UTC', 'America/New_York', ts)) as session_date,
    open,
    high,
    low,
    close,
    volume,
    (high + low + close) / 3 as typical_price,
    previous_close,
    coalesce(abs(close / previous_close - 1) > 0.20, false) as is_spike,
    source,
    fetched_at,
    loaded_at,
    datediff('second', dateadd('minute', 1, ts), loaded_at) as ingest_lag_seconds,
    kafka_topic,
    kafka_partition,
    kafka_offset
from with_previous;
