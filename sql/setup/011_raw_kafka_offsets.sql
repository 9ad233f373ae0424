-- Where to resume reading, per topic and partition: written in the same transaction as the
-- rows it covers, so it is the source of truth (Kafka group commits are informational).
-- cluster_id detects a rebuilt Kafka cluster whose offsets started again at 0.
create table if not exists RAW.KAFKA_OFFSETS (
    kafka_topic      varchar(249)  not null,
    kafka_partition  integer       not null,
    next_offset      bigint        not null,
    cluster_id       varchar(64),
    updated_at       timestamp_ntz not null,
    primary key (kafka_topic, kafka_partition)
);
