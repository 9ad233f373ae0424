-- RSI(14) of daily closes with Wilder's smoothing, as TA-Lib computes it:
--   change_t    = close_t - close_(t-1), t counting a symbol's sessions from 1
--   gain_t      = max(change_t, 0);  loss_t = max(-change_t, 0)
--   avg_gain_15 = mean(gain_2 .. gain_15)  (the first 14 changes; likewise avg_loss)
--   avg_gain_t  = (avg_gain_(t-1) * 13 + gain_t) / 14   for t > 15  (Wilder's smoothing)
--   rsi_t       = 100 * avg_gain_t / (avg_gain_t + avg_loss_t), 0 when both are 0
-- The first value is on a symbol's 15th session; earlier sessions have NULL.
--
-- Without recursion: unrolled, the smoothing is a weighted sum,
--   avg_gain_t = (1/14) * sum over k = 15..t of (13/14)^(t - k) * input_k,
-- input_15 = gain_2 + .. + gain_15 (the seed) and input_k = gain_k after it. A window sum
-- gives it once the weights are split as (13/14)^(t - k) = (14/13)^(e - t) * (13/14)^(e - k)
-- around a fixed session e. To keep both factors within floating point, sessions are cut
-- into blocks of 1024 and e is the last session of each block: a session's average is its
-- block's running sum, plus the previous block's total carried over. Inputs two blocks
-- back weigh less than (13/14)^1025 < 1e-32 and are left out: below double precision.
with

daily_bars as (
    select * from {{ ref("daily_bars") }}
),

changes as (
    select
        symbol,
        session_date,
        row_number() over (partition by symbol order by session_date) as n,
        close - lag(close) over (partition by symbol order by session_date) as change
    from daily_bars
),

-- Gains are max(change, 0), losses max(-change, 0); each is smoothed alike.
{%- set sides = {"gain": "change", "loss": "-change"} %}

smoothing_inputs as (
    select
        symbol,
        session_date,
        n,
        {%- for side, signed_change in sides.items() %}
            case
                when n = 15
                    then sum(greatest({{ signed_change }}, 0)) over (
                            partition by symbol order by n rows between 13 preceding and current row
                        )
                when n > 15 then greatest({{ signed_change }}, 0)
            end as {{ side }}_input,
        {%- endfor %}
        floor((n - 15) / 1024) as block,
        15 + 1024 * (floor((n - 15) / 1024) + 1) - 1 as block_end
    from changes
),

weighted as (
    select
        *,
    {%- for side in sides %}
        {{ side }}_input * power(13::float / 14::float, block_end - n)
            as {{ side }}_weighted{{ "," if not loop.last }}
    {%- endfor %}
    from smoothing_inputs
    where n >= 15
),

blocks as (
    select
        symbol,
        block,
        block_end,
    {%- for side in sides %}
        sum({{ side }}_weighted) as {{ side }}_total{{ "," if not loop.last }}
    {%- endfor %}
    from weighted
    group by symbol, block, block_end
),

carried as (
    select
        symbol,
        block,
        lag(block_end) over (partition by symbol order by block) as previous_block_end,
    {%- for side in sides %}
        lag({{ side }}_total) over (partition by symbol order by block)
            as previous_{{ side }}_total{{ "," if not loop.last }}
    {%- endfor %}
    from blocks
),

averages as (
    select
        weighted.symbol,
        weighted.session_date,
    {%- for side in sides %}
        (
            sum(weighted.{{ side }}_weighted) over (
                partition by weighted.symbol, weighted.block order by weighted.n
                rows between unbounded preceding and current row
                ) * power(14::float / 13::float, weighted.block_end - weighted.n)
            + coalesce(
                carried.previous_{{ side }}_total
                * power(13::float / 14::float, weighted.n - carried.previous_block_end),
                0
            )
        ) / 14 as avg_{{ side }}_14{{ "," if not loop.last }}
    {%- endfor %}
    from weighted
    inner join carried
        on weighted.symbol = carried.symbol and weighted.block = carried.block
),

final as (
    select
        changes.symbol,
        changes.session_date,
        averages.avg_gain_14,
        averages.avg_loss_14,
        case
            when averages.avg_gain_14 is null then null
            when averages.avg_gain_14 + averages.avg_loss_14 = 0 then 0
            else 100 * averages.avg_gain_14 / (averages.avg_gain_14 + averages.avg_loss_14)
        end as rsi_14
    from changes
    left join averages
        on changes.symbol = averages.symbol and changes.session_date = averages.session_date
)

select * from final
