-- Each symbol's latest committed bar with its session so far: what the live watchlist shows.
--   session_open / high / low / volume  the session's first open, extremes, summed volume
--   change_vs_open_pct                  (close / session_open - 1) * 100
--   move_rank                           1 moved most on the day (abs(change_on_day_pct));
--                                       NULL without a previous close
-- Other columns as in live_minute_bars.
with

live_minute_bars as (
    select * from {{ ref("live_minute_bars") }}
),

sessions as (
    select
        symbol,
        min_by(open, ts) as session_open,
        max(high) as session_high,
        min(low) as session_low,
        sum(volume) as session_volume,
        count(*) as bar_count
    from live_minute_bars
    group by symbol
),

latest_bars as (
    select *
    from live_minute_bars
    qualify row_number() over (partition by symbol order by ts desc) = 1
),

final as (
    select
        latest_bars.symbol,
        latest_bars.ts,
        latest_bars.session_date,
        latest_bars.close as last_close,
        latest_bars.ma5,
        latest_bars.ma20,
        latest_bars.session_vwap,
        latest_bars.previous_close,
        latest_bars.change_on_day_pct,
        latest_bars.loaded_at,
        sessions.session_open,
        sessions.session_high,
        sessions.session_low,
        sessions.session_volume,
        sessions.bar_count,
        (latest_bars.close / sessions.session_open - 1) * 100 as change_vs_open_pct,
        case
            when latest_bars.change_on_day_pct is not null
                then row_number() over (
                        order by
                            latest_bars.change_on_day_pct is null,
                            abs(latest_bars.change_on_day_pct) desc,
                            latest_bars.symbol
                    )
        end as move_rank
    from latest_bars
    inner join sessions
        on latest_bars.symbol = sessions.symbol
)

select * from final
