-- The latest bar per symbol with its session's figures: what a watchlist screen shows.
--   last_close          the latest minute bar's close; ma5 / ma20 as in minute_bars; for a
--                       session known only from its daily bar (backfill): its close, ts its
--                       open, no ma5 / ma20
--   change_on_day_pct   (last close / previous session's close - 1) * 100
--   change_vs_open_pct  (last close / session open - 1) * 100
with

minute_bars as (
    select * from {{ ref("minute_bars") }}
),

daily_trends as (
    select * from {{ ref("daily_trends") }}
),

latest_sessions as (
    select
        symbol,
        session_date,
        last_bar_ts
    from daily_trends
    qualify row_number() over (partition by symbol order by session_date desc) = 1
),

latest_bars as (
    select
        latest_sessions.symbol,
        latest_sessions.session_date,
        latest_sessions.last_bar_ts as ts,
        minute_bars.close,
        minute_bars.ma5,
        minute_bars.ma20
    from latest_sessions
    left join minute_bars
        on
            latest_sessions.symbol = minute_bars.symbol
            and latest_sessions.last_bar_ts = minute_bars.ts
),

final as (
    select
        latest_bars.symbol,
        latest_bars.ts,
        latest_bars.session_date,
        latest_bars.ma5,
        latest_bars.ma20,
        sessions.open as session_open,
        sessions.high as session_high,
        sessions.low as session_low,
        sessions.volume as session_volume,
        sessions.vwap as session_vwap,
        sessions.bar_count,
        sessions.change_pct as change_on_day_pct,
        coalesce(latest_bars.close, sessions.close) as last_close,
        (coalesce(latest_bars.close, sessions.close) / sessions.open - 1) * 100
            as change_vs_open_pct
    from latest_bars
    inner join daily_trends as sessions
        on
            latest_bars.symbol = sessions.symbol
            and latest_bars.session_date = sessions.session_date
)

select * from final
