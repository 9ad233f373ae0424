-- Daily bars per symbol and exchange session, materialised from STAGING.VALID_BARS by
-- `stockpipe trends` / the trends flow, which refresh only the sessions whose bars changed
-- (sql/refresh/daily_bars.sql holds the computation and the definitions):
--   open = the session's first bar's open; close = its last bar's close;
--   high = max(high); low = min(low); volume = sum(volume); bar_count = bars seen;
--   vwap = sum(typical_price * volume) / sum(volume), typical_price = (high + low + close) / 3
create table if not exists MARTS.DAILY_BARS (
    symbol        varchar(15)   not null,
    session_date  date          not null,
    open          float         not null,
    high          float         not null,
    low           float         not null,
    close         float         not null,
    volume        bigint        not null,
    vwap          float,
    bar_count     integer       not null,
    first_bar_ts  timestamp_ntz not null,
    last_bar_ts   timestamp_ntz not null,
    refreshed_at  timestamp_ntz not null
);
