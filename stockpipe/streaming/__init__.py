"""Kafka: the local KRaft broker, topics, the quote producer and the batch consumer."""
