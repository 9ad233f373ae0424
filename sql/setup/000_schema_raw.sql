-- RAW: what arrived, as it arrived (one row per accepted message, plus Kafka metadata).
create schema if not exists RAW;
