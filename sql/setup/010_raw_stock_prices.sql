-- One row per (symbol, ts, bar_interval): the drain replaces a bar only with a later fetch
-- of it (larger fetched_at), so re-delivered or re-fetched bars never duplicate.
-- Timestamps are UTC wall-clock (TIMESTAMP_NTZ holding UTC), the Snowflake loading norm.
-- No PRIMARY KEY clause: Snowflake would not enforce it, and the embedded warehouse would
-- (DuckDB keeps an in-memory index that grows with the table, so a drain's memory would
-- follow the table's size). Uniqueness of (symbol, ts, bar_interval) is the loader's job
-- and the tests check it.
create table if not exists RAW.STOCK_PRICES (
    symbol           varchar(15)   not null,
    ts               timestamp_ntz not null,  -- bar start, UTC
    bar_interval     varchar(4)    not null,  -- '1m'
    open             float         not null,
    high             float         not null,
    low              float         not null,
    close            float         not null,
    volume           float         not null,  -- shares; fractional since schema_version 2
    source           varchar(32)   not null,  -- yfinance | simulated | replay
    fetched_at       timestamp_ntz not null,  -- when the source was asked, UTC
    schema_version   integer       not null,
    kafka_topic      varchar(249)  not null,
    kafka_partition  integer       not null,
    kafka_offset     bigint        not null,
    kafka_timestamp  timestamp_ntz,           -- the message's timestamp, UTC
    loaded_at        timestamp_ntz not null   -- when the drain committed it, UTC
);
