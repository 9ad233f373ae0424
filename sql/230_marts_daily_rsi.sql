-- RSI(14) of daily closes with Wilder's smoothing, as TA-Lib computes it:
--   change_t   = close_t - close_(t-1)
--   gain_t     = max(change_t, 0);  loss_t = max(-change_t, 0)
--   avg_gain_14 = mean(gain_1 .. gain_14)  (the first 14 changes; likewise avg_loss)
--   avg_gain_t  = (avg_gain_(t-1) * 13 + gain_t) / 14   for t > 14  (Wilder's smoothing)
--   rsi_t       = 100 * avg_gain_t / (avg_gain_t + avg_loss_t), 0 when both are 0
-- The first value is on the 15th session of a symbol; earlier sessions have NULL.
-- Wilder's average is recursive, so this is a recursive CTE (one step per session).
create or replace view MARTS.DAILY_RSI as
with recursive

daily as (
    select symbol, session_date, close from MARTS.DAILY_OHLCV
),

changes as (
    select
        symbol,
        session_date,
        row_number() over (partition by symbol order by session_date) as n,
        close - lag(close) over (partition by symbol order by session_date) as change
    from daily
),

seed as (
    select
        symbol,
        15 as n,
        avg(greatest(change, 0)) as avg_gain,
        avg(greatest(-change, 0)) as avg_loss
    from changes
    where n between 2 and 15
    group by symbol
    having count(*) = 14
),

wilder (symbol, n, avg_gain, avg_loss) as (
    select symbol, n, avg_gain, avg_loss from seed
    union all
    select
        c.symbol,
        c.n,
        (w.avg_gain * 13 + greatest(c.change, 0)) / 14,
        (w.avg_loss * 13 + greatest(-c.change, 0)) / 14
    from wilder as w
    join changes as c
      on c.symbol = w.symbol and c.n = w.n + 1
)

select
    c.symbol,
    c.session_date,
    case
        when w.n is null then null
        when w.avg_gain + w.avg_loss = 0 then 0
        else 100 * w.avg_gain / (w.avg_gain + w.avg_loss)
    end as rsi_14
from changes as c
left join wilder as w
  on w.symbol = c.symbol and w.n = c.n;
