-- Clean 1-minute bars with what is read at minute grain:
--   previous_close      the symbol's previous bar's close
--   is_spike            close moved more than 20 % from the previous bar's close (kept, flagged)
--   typical_price       (high + low + close) / 3
--   ma5 / ma20          mean of the last 5 / 20 closes including this one, over bars (rows),
--                       not clock time; NULL until the window is full (no partial averages)
--   ingest_lag_seconds  from the bar's end to its load
-- Incremental: each symbol with pending load-log entries is rebuilt from its first pending
-- session on; the windows see the 19 bars before it, taken from this table.
{{
    config(
        materialized="incremental",
        incremental_strategy="replace_from_pending",
    )
}}

-- depends_on: {{ ref("pending_symbols") }}

with

valid_bars as (
    select * from {{ ref("valid_bars") }}
),

{% if is_incremental() %}

    pending_symbols as (
        select * from {{ ref("pending_symbols") }}
    ),

    rebuilt_bars as (
        select valid_bars.*
        from valid_bars
        inner join pending_symbols
            on
                valid_bars.symbol = pending_symbols.symbol
                and valid_bars.session_date >= pending_symbols.first_session
        where valid_bars.bar_interval = '1m'
    ),

    -- What the windows need of the bars before the rebuilt ones: their closes.
    earlier_bars as (
        select
            built.symbol,
            built.ts,
            built.close
        from {{ this }} as built
        inner join pending_symbols
            on
                built.symbol = pending_symbols.symbol
                and built.session_date < pending_symbols.first_session
        qualify row_number() over (partition by built.symbol order by built.ts desc) <= 19
    ),

    window_input as (
        select
            *,
            true as is_rebuilt
        from rebuilt_bars
        union all by name
        select
            *,
            false as is_rebuilt
        from earlier_bars
    ),

{% else %}

    window_input as (
        select
            *,
            true as is_rebuilt
        from valid_bars
        -- A bar without a symbol (only in a damaged RAW) is validation's to report.
        where bar_interval = '1m' and symbol is not null
    ),

{% endif %}

windows as (
    select
        *,
        lag(close) over (partition by symbol order by ts) as previous_close,
        avg(close) over (
            partition by symbol order by ts rows between 4 preceding and current row
        ) as avg_5,
        count(close) over (
            partition by symbol order by ts rows between 4 preceding and current row
        ) as n_5,
        avg(close) over (
            partition by symbol order by ts rows between 19 preceding and current row
        ) as avg_20,
        count(close) over (
            partition by symbol order by ts rows between 19 preceding and current row
        ) as n_20
    from window_input
),

final as (
    select
        symbol,
        ts,
        session_date,
        convert_timezone('UTC', 'America/New_York', ts) as local_ts,
        open,
        high,
        low,
        close,
        volume,
        (high + low + close) / 3 as typical_price,
        previous_close,
        coalesce(abs(close / previous_close - 1) > 0.20, false) as is_spike,
        case when n_5 = 5 then avg_5 end as ma5,
        case when n_20 = 20 then avg_20 end as ma20,
        source,
        fetched_at,
        loaded_at,
        datediff('second', dateadd('minute', 1, ts), loaded_at) as ingest_lag_seconds,
        kafka_topic,
        kafka_partition,
        kafka_offset
    from windows
    where is_rebuilt
)

select * from final
