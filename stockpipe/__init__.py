"""stockpipe: quotes -> Kafka (KRaft) -> Snowflake, orchestrated by Prefect 3."""

__version__ = "0.1.0"
