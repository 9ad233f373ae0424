-- Daily bars per symbol and exchange session (New York date), from the valid 1-minute bars:
--   open = the session's first bar's open; close = its last bar's close (by ts)
--   high = max(high); low = min(low); volume = sum(volume); bar_count = bars seen
--   vwap = sum(typical_price * volume) / sum(volume), typical_price = (high + low + close) / 3;
--          NULL when the volume is 0
-- Incremental: each symbol with pending load-log entries is rebuilt from its first pending
-- session on (macros/replace_from_pending.sql).
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
    -- A bar without a symbol (only in a damaged RAW) is validation's to report.
    where bar_interval = '1m' and symbol is not null
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
        where {{ pending_bars_filter("valid_bars") }}
    ),

{% else %}

    rebuilt_bars as (
        select * from valid_bars
    ),

{% endif %}

final as (
    select
        symbol,
        session_date,
        min_by(open, ts) as open,
        max(high) as high,
        min(low) as low,
        max_by(close, ts) as close,
        sum(volume) as volume,
        sum((high + low + close) / 3 * volume) / nullif(sum(volume), 0) as vwap,
        count(*) as bar_count,
        min(ts) as first_bar_ts,
        max(ts) as last_bar_ts,
        sysdate() as refreshed_at
    from rebuilt_bars
    group by symbol, session_date
)

select * from final
