-- Clean 1-minute bars with what is read at minute grain:
--   previous_close      the symbol's previous bar's close
--   is_spike            close moved more than 20 % from the previous bar's close (kept, flagged)
--   typical_price       (high + low + close) / 3                     (macros/indicators.sql)
--   ma5 / ma20          mean of the last 5 / 20 closes including this one, over bars (rows),
--                       not clock time; NULL until the window is full (no partial averages;
--                       macros/indicators.sql, shared with the live tier's views)
--   ingest_lag_seconds  from the bar's end to its load
-- The recent sessions only: the last `minute_bars_days` calendar days (var, default 14)
-- up to the newest session in daily_bars; older minute bars are pruned at each build (the
-- whole minute history stays in RAW, and in STAGING.VALID_BARS cleaned up). Bounding it
-- keeps a full build, and every read of it, small.
-- Incremental: each symbol with pending load-log entries is rebuilt from its first pending
-- session on; the windows see the 19 bars before it, taken from this table.
{{
    config(
        materialized="incremental",
        incremental_strategy="replace_from_pending",
        post_hook=[
            "delete from {{ this }} where session_date < {{ minute_bars_first_session() }}",
        ],
    )
}}

-- depends_on: {{ ref("pending_symbols") }}
-- depends_on: {{ ref("daily_bars") }}
{%- set first_kept_session = minute_bars_first_session() %}

with

valid_bars as (
    select * from {{ ref("valid_bars") }}
    where bar_interval = '1m' and symbol is not null
),

recent as (
    select {{ first_kept_session }} as first_session
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
        inner join recent
            on valid_bars.session_date >= recent.first_session
        where {{ pending_bars_filter("valid_bars") }}
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
            valid_bars.*,
            true as is_rebuilt
        from valid_bars
        inner join recent
            on valid_bars.session_date >= recent.first_session
        -- A literal bound on ts (one day early, in UTC) reaches RAW; the join is exact.
        where valid_bars.ts >= dateadd('day', -1, {{ first_kept_session }})
    ),

{% endif %}

windows as (
    select
        *,
        lag(close) over (partition by symbol order by ts) as previous_close,
        {{ minute_moving_averages() }}
    from window_input
),

final as (
    select
        symbol,
        ts,
        session_date,
        open,
        high,
        low,
        close,
        volume,
        previous_close,
        source,
        fetched_at,
        loaded_at,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        ma5,
        ma20,
        {{ exchange_time('ts') }} as local_ts,
        {{ typical_price() }} as typical_price,
        coalesce(abs(close / previous_close - 1) > 0.20, false) as is_spike,
        datediff('second', dateadd('minute', 1, ts), loaded_at) as ingest_lag_seconds
    from windows
    where is_rebuilt
)

select * from final
