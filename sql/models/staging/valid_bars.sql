-- Valid bars, one per (symbol, ts, bar_interval): the latest fetch wins, and bars that
-- break the contract's OHLCV rules (macros/quote_contract.sql) are left out.
-- A view with no window over time, so the incremental models' filters on symbol and ts
-- reach RAW. session_date: the exchange's date of the bar.
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
        {{ exchange_date('ts') }} as session_date
    from latest_fetch
    where {{ valid_ohlcv() }}
)

select * from final
