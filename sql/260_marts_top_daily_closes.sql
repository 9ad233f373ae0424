-- The five highest daily closes of each symbol and the sessions they were made in
-- (close_rank 1 = highest; ties broken by the earlier session).
create or replace view MARTS.TOP_DAILY_CLOSES as
with

daily as (
    select symbol, session_date, close from MARTS.DAILY_OHLCV
),

ranked as (
    select
        *,
        row_number() over (partition by symbol order by close desc, session_date) as close_rank
    from daily
)

select symbol, close_rank, session_date, close
from ranked
where close_rank <= 5;
