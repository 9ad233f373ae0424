-- Where a batch waits between its bulk load and the drain's transaction (Snowflake): the
-- drain PUTs the batch as a Parquet file on the stage, COPYs it in under its own LOAD_ID,
-- merges from it inside the transaction and deletes its rows after. Neither object is
-- created at run time: the drain's role may write them, not create them.
-- Transient: no fail-safe copies of rows that live for seconds. The embedded warehouse
-- reads each batch in place and leaves both empty.
create transient table if not exists RAW.STOCK_PRICES_BATCH (
    symbol           varchar(15)   not null,
    ts               timestamp_ntz not null,
    bar_interval     varchar(4)    not null,
    open             float         not null,
    high             float         not null,
    low              float         not null,
    close            float         not null,
    volume           float         not null,  -- shares; fractional since schema_version 2
    source           varchar(32)   not null,
    fetched_at       timestamp_ntz not null,
    schema_version   integer       not null,
    kafka_topic      varchar(249)  not null,
    kafka_partition  integer       not null,
    kafka_offset     bigint        not null,
    kafka_timestamp  timestamp_ntz,
    loaded_at        timestamp_ntz not null,
    load_id          varchar(32)   not null   -- one per staged batch
);

create stage if not exists RAW.STOCK_PRICES_STAGE
    file_format = (type = parquet);
