-- The five highest daily closes of each symbol and the sessions they were made in
-- (close_rank 1 = highest; ties broken by the earlier session).
with

daily_bars as (
    select * from {{ ref("daily_bars") }}
),

ranked as (
    select
        symbol,
        session_date,
        close,
        row_number() over (partition by symbol order by close desc, session_date asc) as close_rank
    from daily_bars
),

final as (
    select
        symbol,
        close_rank,
        session_date,
        close
    from ranked
    where close_rank <= 5
)

select * from final
