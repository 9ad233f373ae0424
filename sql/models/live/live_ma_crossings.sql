-- Where a bar's close crossed its ma20 (as in live_minute_bars) in the current session:
-- the live tier alerts on each crossing once, as its bar arrives (stockpipe.live.store).
--   loaded_at  when the bar was committed to the live store
--   direction  'up': the close went from at or below ma20 to above it; 'down' the reverse
with

live_minute_bars as (
    select * from {{ ref("live_minute_bars") }}
),

with_previous as (
    select
        symbol,
        ts,
        session_date,
        close,
        ma20,
        loaded_at,
        lag(close) over (partition by symbol order by ts) as previous_close_1m,
        lag(ma20) over (partition by symbol order by ts) as previous_ma20
    from live_minute_bars
),

final as (
    select
        symbol,
        ts,
        session_date,
        close,
        ma20,
        loaded_at,
        case when close > ma20 then 'up' else 'down' end as direction
    from with_previous
    where
        previous_ma20 is not null
        and ma20 is not null
        and (
            (previous_close_1m <= previous_ma20 and close > ma20)
            or (previous_close_1m >= previous_ma20 and close < ma20)
        )
)

select * from final
