-- Moving averages of 1-minute closes per symbol, over rows (bars), not clock time.
--   ma5  = mean of the last 5 closes including this one;  ma20 likewise over 20.
--   NULL until the window is full (no partial averages).
create or replace view MARTS.MINUTE_MOVING_AVERAGES as
with

minute_bars as (
    select symbol, ts, session_date, close
    from STAGING.STOCK_PRICES
    where bar_interval = '1m'
),

windows as (
    select
        symbol,
        ts,
        session_date,
        close,
        avg(close) over (partition by symbol order by ts rows between 4 preceding and current row)
            as avg5,
        count(close) over (partition by symbol order by ts rows between 4 preceding and current row)
            as n5,
        avg(close) over (partition by symbol order by ts rows between 19 preceding and current row)
            as avg20,
        count(close) over (partition by symbol order by ts rows between 19 preceding and current row)
            as n20
    from minute_bars
)

select
    symbol,
    ts,
    session_date,
    close,
    case when n5 = 5 then avg5 end as ma5,
    case when n20 = 20 then avg20 end as ma20
from windows;
