-- Daily bars per symbol and exchange session (New York date), from the valid bars.
-- From a session's 1-minute bars:
--   open = the first bar's open; close = the last bar's close (by ts)
--   high = max(high); low = min(low); volume = sum(volume); bar_count = minute bars seen
--   vwap = sum(typical_price * volume) / sum(volume), typical_price = (high + low + close) / 3;
--          NULL when the volume is 0 (macros/indicators.sql)
-- A session with a daily (1d) bar, from a backfill, takes open/high/low/close/volume from
-- it, whether or not it also has minute bars: the provider's daily bar is the session's
-- consolidated figure (opening and closing auctions, every venue), which minute bars can
-- miss (minutes without a trade, an ingest that started late). Backfill publishes daily
-- bars of closed sessions only, so a daily bar is never a partial day. VWAP needs minute
-- bars: NULL for a session known only from its daily bar (bar_count 0).
--   figures_from = '1d' or '1m': where open/high/low/close/volume came from
--   first_bar_ts / last_bar_ts = the first and last minute bar's ts; the daily bar's ts
--          (the session's open) when the session has no minute bars
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
    where bar_interval in ('1m', '1d') and symbol is not null
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

from_minutes as (
    select
        symbol,
        session_date,
        min_by(open, ts) as open,
        max(high) as high,
        min(low) as low,
        max_by(close, ts) as close,
        sum(volume) as volume,
        {{ vwap() }} as vwap,
        count(*) as bar_count,
        min(ts) as first_bar_ts,
        max(ts) as last_bar_ts
    from rebuilt_bars
    where bar_interval = '1m'
    group by symbol, session_date
),

from_daily as (
    select
        symbol,
        session_date,
        open,
        high,
        low,
        close,
        volume,
        ts
    from rebuilt_bars
    where bar_interval = '1d'
),

combined as (
    select
        from_minutes.vwap,
        coalesce(from_daily.symbol, from_minutes.symbol) as symbol,
        coalesce(from_daily.session_date, from_minutes.session_date) as session_date,
        coalesce(from_daily.open, from_minutes.open) as open,
        coalesce(from_daily.high, from_minutes.high) as high,
        coalesce(from_daily.low, from_minutes.low) as low,
        coalesce(from_daily.close, from_minutes.close) as close,
        coalesce(from_daily.volume, from_minutes.volume) as volume,
        coalesce(from_minutes.bar_count, 0) as bar_count,
        case when from_daily.symbol is null then '1m' else '1d' end as figures_from,
        coalesce(from_minutes.first_bar_ts, from_daily.ts) as first_bar_ts,
        coalesce(from_minutes.last_bar_ts, from_daily.ts) as last_bar_ts,
        sysdate() as refreshed_at
    from from_minutes
    full outer join from_daily
        on
            from_minutes.symbol = from_daily.symbol
            and from_minutes.session_date = from_daily.session_date
),

final as (
    select
        symbol,
        session_date,
        open,
        high,
        low,
        close,
        volume,
        vwap,
        bar_count,
        figures_from,
        first_bar_ts,
        last_bar_ts,
        refreshed_at
    from combined
)

select * from final
