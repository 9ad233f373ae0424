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

-- Window frames are written out: Snowflake has no WINDOW clause.
windows as (
    select
        *,
        ln(close / previous_close) as log_return,
        avg(close) over (
            partition by symbol order by session_date rows between 4 preceding and current row
        ) as avg_5,
        count(close) over (
            partition by symbol order by session_date rows between 4 preceding and current row
        ) as n_5,
        avg(close) over (
            partition by symbol order by session_date rows between 19 preceding and current row
        ) as avg_20,
        count(close) over (
            partition by symbol order by session_date rows between 19 preceding and current row
        ) as n_20,
        avg(close) over (
            partition by symbol order by session_date rows between 49 preceding and current row
        ) as avg_50,
        count(close) over (
            partition by symbol order by session_date rows between 49 preceding and current row
        ) as n_50,
        max(high) over (
            partition by symbol order by session_date rows between 251 preceding and current row
        ) as max_high_252,
        min(low) over (
            partition by symbol order by session_date rows between 251 preceding and current row
        ) as min_low_252,
        count(*) over (
            partition by symbol order by session_date rows between 251 preceding and current row
        ) as n_252
    from with_previous
),

volatility as (
    select
        *,
        stddev_samp(log_return) over (
            partition by symbol order by session_date rows between 29 preceding and current row
        ) as sd_30,
        count(log_return) over (
            partition by symbol order by session_date rows between 29 preceding and current row
        ) as n_returns_30
    from windows
),

final as (
    select
        volatility.symbol,
        volatility.session_date,
        volatility.open,
        volatility.high,
        volatility.low,
        volatility.close,
        volatility.volume,
        volatility.vwap,
        volatility.bar_count,
        volatility.first_bar_ts,
        volatility.last_bar_ts,
        volatility.previous_close,
        daily_rsi.rsi_14,
        (volatility.close / volatility.previous_close - 1) * 100 as change_pct,
        case when volatility.n_5 = 5 then volatility.avg_5 end as sma_5,
        case when volatility.n_20 = 20 then volatility.avg_20 end as sma_20,
        case when volatility.n_50 = 50 then volatility.avg_50 end as sma_50,
        case
            when volatility.n_returns_30 = 30 then volatility.sd_30 * sqrt(252)
        end as volatility_30,
        case when volatility.n_252 = 252 then volatility.max_high_252 end as high_52w,
        case when volatility.n_252 = 252 then volatility.min_low_252 end as low_52w,
        case
            when volatility.n_252 = 252 then (volatility.close / volatility.max_high_252 - 1) * 100
        end as pct_from_52w_high,
        case
            when volatility.n_252 = 252 then (volatility.close / volatility.min_low_252 - 1) * 100
        end as pct_from_52w_low
    from volatility
    left join daily_rsi
        on volatility.symbol = daily_rsi.symbol and volatility.session_date = daily_rsi.session_date
)

select * from final
