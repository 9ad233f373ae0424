-- Daily trend figures per symbol and session. Windows count sessions (rows), not calendar
-- days: weekends and holidays are not gaps. A window with fewer rows than it needs gives
-- NULL, never a partial value.
--   change_pct     = (close / previous session's close - 1) * 100
--   sma_5/20/50    = mean of the last N daily closes, this session included
--   volatility_30  = sample standard deviation (n - 1) of the last 30 daily log returns
--                    ln(close_t / close_(t-1)), times sqrt(252): annualised
--   high_52w/low_52w = highest high / lowest low of the last 252 sessions (this one included)
--   pct_from_52w_high/low = (close / high_52w - 1) * 100, (close / low_52w - 1) * 100
--   rsi_14         = see MARTS.DAILY_RSI
create or replace view MARTS.DAILY_TRENDS as
with

daily as (
    select * from MARTS.DAILY_OHLCV
),

rsi as (
    select * from MARTS.DAILY_RSI
),

with_returns as (
    select
        *,
        ln(close / lag(close) over (partition by symbol order by session_date)) as log_return
    from daily
),

windows as (
    -- Window frames are written out: Snowflake has no WINDOW clause.
    select
        *,
        avg(close) over (partition by symbol order by session_date rows between 4 preceding and current row) as avg_5,
        count(close) over (partition by symbol order by session_date rows between 4 preceding and current row) as n_5,
        avg(close) over (partition by symbol order by session_date rows between 19 preceding and current row) as avg_20,
        count(close) over (partition by symbol order by session_date rows between 19 preceding and current row) as n_20,
        avg(close) over (partition by symbol order by session_date rows between 49 preceding and current row) as avg_50,
        count(close) over (partition by symbol order by session_date rows between 49 preceding and current row) as n_50,
        stddev_samp(log_return) over (partition by symbol order by session_date rows between 29 preceding and current row) as sd_30,
        count(log_return) over (partition by symbol order by session_date rows between 29 preceding and current row) as n_returns_30,
        max(high) over (partition by symbol order by session_date rows between 251 preceding and current row) as max_high_252,
        min(low) over (partition by symbol order by session_date rows between 251 preceding and current row) as min_low_252,
        count(*) over (partition by symbol order by session_date rows between 251 preceding and current row) as n_252
    from with_returns
)

select
    w.symbol,
    w.session_date,
    w.open,
    w.high,
    w.low,
    w.close,
    w.volume,
    w.vwap,
    w.bar_count,
    w.previous_close,
    w.change_pct,
    case when w.n_5 = 5 then w.avg_5 end as sma_5,
    case when w.n_20 = 20 then w.avg_20 end as sma_20,
    case when w.n_50 = 50 then w.avg_50 end as sma_50,
    case when w.n_returns_30 = 30 then w.sd_30 * sqrt(252) end as volatility_30,
    case when w.n_252 = 252 then w.max_high_252 end as high_52w,
    case when w.n_252 = 252 then w.min_low_252 end as low_52w,
    case when w.n_252 = 252 then (w.close / w.max_high_252 - 1) * 100 end as pct_from_52w_high,
    case when w.n_252 = 252 then (w.close / w.min_low_252 - 1) * 100 end as pct_from_52w_low,
    r.rsi_14
from windows as w
left join rsi as r
  on r.symbol = w.symbol and r.session_date = w.session_date;
