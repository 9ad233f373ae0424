-- Clean 1-minute bars: STAGING.VALID_BARS (latest fetch per bar, invalid bars out) plus
--   * is_spike: close moved more than 20 % from the previous bar's close (kept, flagged);
--   * session_date / local_ts: the exchange's date and wall-clock time (America/New_York);
--   * ingest_lag_seconds: from the bar's end to its load.
create or replace view STAGING.STOCK_PRICES as
with

valid_bars as (
    select * from STAGING.VALID_BARS
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
    session_date,
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
