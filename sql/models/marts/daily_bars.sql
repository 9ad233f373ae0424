-- Daily bars per symbol and exchange session (New York date), from the minute bars:
--   open = the session's first bar's open; close = its last bar's close (by ts)
--   high = max(high); low = min(low); volume = sum(volume); bar_count = bars seen
--   vwap = sum(typical_price * volume) / sum(volume); NULL when the volume is 0
-- Incremental like minute_bars (from each pending symbol's first pending session on).
-- Its post-hook deletes the load-log entries this build took in: it runs only after this
-- model and minute_bars, the two that read them, are built.
{{
    config(
        materialized="incremental",
        incremental_strategy="replace_from_pending",
        post_hook=[
            "delete from {{ source('raw', 'load_log') }}
             where load_id in (select load_id from {{ ref('pending_loads') }})"
        ],
    )
}}

-- depends_on: {{ ref("pending_symbols") }}

with

minute_bars as (
    select * from {{ ref("minute_bars") }}
),

{% if is_incremental() %}

    pending_symbols as (
        select * from {{ ref("pending_symbols") }}
    ),

    rebuilt_bars as (
        select minute_bars.*
        from minute_bars
        inner join pending_symbols
            on
                minute_bars.symbol = pending_symbols.symbol
                and minute_bars.session_date >= pending_symbols.first_session
    ),

{% else %}

    rebuilt_bars as (
        select * from minute_bars
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
        sum(typical_price * volume) / nullif(sum(volume), 0) as vwap,
        count(*) as bar_count,
        min(ts) as first_bar_ts,
        max(ts) as last_bar_ts,
        sysdate() as refreshed_at
    from rebuilt_bars
    group by symbol, session_date
)

select * from final
