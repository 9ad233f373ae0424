-- The current session's minute bars as the live tier shows them, over the live store's RAW
-- (stockpipe live: a following drain commits about every second). A view: each read after
-- a commit sees every committed bar, and nothing is rebuilt per commit.
--   ma5 / ma20, typical_price  as in minute_bars (macros/indicators.sql)
--   session_vwap               the running VWAP of the session up to this bar
--                              (macros/indicators.sql)
--   previous_close             the symbol's last close before this session (a minute or a
--                              daily bar), NULL when the store has none
--   change_on_day_pct          (close / previous_close - 1) * 100
-- The current session is each symbol's newest session_date in the store; the windows also
-- see the bars of the days before it, as minute_bars' do.
with

valid_bars as (
    select * from {{ ref("valid_bars") }}
    where bar_interval in ('1m', '1d') and symbol is not null
),

current_sessions as (
    select
        symbol,
        max(session_date) as session_date
    from valid_bars
    where bar_interval = '1m'
    group by symbol
),

previous_closes as (
    select
        valid_bars.symbol,
        valid_bars.close as previous_close
    from valid_bars
    inner join current_sessions
        on
            valid_bars.symbol = current_sessions.symbol
            and valid_bars.session_date < current_sessions.session_date
    qualify row_number() over (
            partition by valid_bars.symbol order by valid_bars.session_date desc, valid_bars.ts desc
        ) = 1
),

-- The session and the week before it: more than the 19 bars ma20 needs.
recent_bars as (
    select valid_bars.*
    from valid_bars
    inner join current_sessions
        on
            valid_bars.symbol = current_sessions.symbol
            and valid_bars.session_date >= dateadd('day', -7, current_sessions.session_date)
    where valid_bars.bar_interval = '1m'
),

windows as (
    select
        *,
        {{ minute_moving_averages() }},
        {{ vwap(
            "over (partition by symbol, session_date order by ts "
            ~ "rows between unbounded preceding and current row)"
        ) }} as session_vwap
    from recent_bars
),

final as (
    select
        windows.symbol,
        windows.ts,
        windows.session_date,
        windows.open,
        windows.high,
        windows.low,
        windows.close,
        windows.volume,
        windows.ma5,
        windows.ma20,
        windows.session_vwap,
        previous_closes.previous_close,
        windows.fetched_at,
        windows.loaded_at,
        (windows.close / previous_closes.previous_close - 1) * 100 as change_on_day_pct
    from windows
    inner join current_sessions
        on
            windows.symbol = current_sessions.symbol
            and windows.session_date = current_sessions.session_date
    left join previous_closes
        on windows.symbol = previous_closes.symbol
)

select * from final
