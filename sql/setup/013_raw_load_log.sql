-- What each committed change to RAW.STOCK_PRICES touched: one row per (load, symbol) with
-- the first and last bar time it wrote or removed. The drain and the backfill write it in
-- the same transaction as the bars; the trend build (sql/models) rebuilds each logged
-- symbol from the session of first_ts on, then deletes the entries it took in. An entry
-- is deleted only after the marts reflect it, so a commit can never be missed, however late
-- it lands (no look-back window), and bars deleted through stockpipe are reflected too.
create table if not exists RAW.LOAD_LOG (
    load_id    varchar(36)   not null,  -- one per transaction
    symbol     varchar(15)   not null,
    first_ts   timestamp_ntz not null,  -- UTC, the earliest bar written or removed
    last_ts    timestamp_ntz not null,
    bar_count  bigint        not null,  -- bars written or removed
    logged_at  timestamp_ntz not null   -- UTC
);
