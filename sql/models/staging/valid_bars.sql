-- Valid bars, one per (symbol, ts, bar_interval): the latest fetch wins, and bars that
-- break OHLCV rules are left out (non-positive prices, negative volume, high < low,
-- high < max(open, close), low > min(open, close)).
-- A view with no window over time, so the incremental models' filters on symbol and ts
-- reach RAW. session_date: the exchange's date (America/New_York) of the bar.
with

raw_bars as (
    select * from {{ source("raw", "stock_prices") }}
),

latest_fetch as (
    select *
    from raw_bars
    qualify row_number() over (
            partition by symbol, ts, bar_interval order by fetched_at desc, kafka_offset desc
        ) = 1
),

final as (
    select
        symbol,
        ts,
        bar_interval,
        open,
        high,
        low,
        close,
        volume,
        source,
        fetched_at,
        schema_version,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        kafka_timestamp,
        loaded_at,
        to_date(convert_timezone('UTC', 'America/New_York', ts)) as session_date
    from latest_fetch
    where
        open > 0 and high > 0 and low > 0 and close > 0
        and volume >= 0
        and high >= low
        and high >= greatest(open, close)
        and low <= least(open, close)
)

select * from final
