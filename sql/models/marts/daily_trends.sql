-- Daily trend figures per symbol and session. Windows count sessions (rows), not calendar
-- days: weekends and holidays are not gaps. A window with fewer rows than it needs gives
-- NULL, never a partial value.
--   previous_close        the symbol's previous session's close
--   change_pct            (close / previous_close - 1) * 100; NULL on a symbol's first session
--   sma_5 / sma_20 / sma_50  mean of the last N daily closes, this session included
--   volatility_30         sample standard deviation (n - 1) of the last 30 daily log returns
--                         ln(close_t / close_(t-1)), times sqrt(252): annualised
--   high_52w / low_52w    highest high / lowest low of the last 252 sessions (this one included)
--   pct_from_52w_high/low (close / high_52w - 1) * 100, (close / low_52w - 1) * 100
--   rsi_14                see daily_rsi
-- A table rebuilt at each build from daily_bars (a row per symbol and session: small).
with

daily_bars as (
    select * from {{ ref("daily_bars") }}
),

daily_rsi as (
    select * from {{ ref("daily_rsi") }}
),

with_previous as (
    select
        *,
        lag(close) over (partition by symbol order by session_date) as previous_close
    from daily_bars
),

with_returns as (
    select
        *,
        ln(close / previous_close) as log_return
    from with_previous
),

windows as (
    select
        *,
        {{ full_window("avg", "close", 5, "session_date") }} as sma_5,
        {{ full_window("avg", "close", 20, "session_date") }} as sma_20,
        {{ full_window("avg", "close", 50, "session_date") }} as sma_50,
        {{ full_window("stddev_samp", "log_return", 30, "session_date") }} as sd_30,
        {{ full_window("max", "high", 252, "session_date") }} as high_52w,
        {{ full_window("min", "low", 252, "session_date") }} as low_52w
    from with_returns
),

final as (
    select
        windows.symbol,
        windows.session_date,
        windows.open,
        windows.high,
        windows.low,
        windows.close,
        windows.volume,
        windows.vwap,
        windows.bar_count,
        windows.figures_from,
        windows.first_bar_ts,
        windows.last_bar_ts,
        windows.previous_close,
        windows.sma_5,
        windows.sma_20,
        windows.sma_50,
        windows.high_52w,
        windows.low_52w,
        daily_rsi.rsi_14,
        (windows.close / windows.previous_close - 1) * 100 as change_pct,
        windows.sd_30 * sqrt(252) as volatility_30,
        (windows.close / windows.high_52w - 1) * 100 as pct_from_52w_high,
        (windows.close / windows.low_52w - 1) * 100 as pct_from_52w_low
    from windows
    left join daily_rsi
        on windows.symbol = daily_rsi.symbol and windows.session_date = daily_rsi.session_date
)

select * from final
