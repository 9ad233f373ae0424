"""How every Kafka client of the pipeline is configured, and what it says when no broker
answers.

librdkafka writes a line to stderr for every failed connection attempt: a client waiting
for a broker that is down printed hundreds of them before its own error. Here its lines go
through Python logging at DEBUG (``stockpipe -v`` shows them) and its errors are logged
there too; the code that waited reports the outcome once, naming the address, the setting
and the fix (:class:`KafkaUnreachable`).
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from stockpipe.settings import KafkaSettings

LIBRDKAFKA = logging.getLogger("stockpipe.kafka.librdkafka")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


class KafkaUnreachable(RuntimeError):
    """No broker of the configured bootstrap servers answered in time."""


class _DebugLog:
    """librdkafka's log callback target: every line at DEBUG, whatever its syslog level
    (a broker that is down is reported once, by the code that waited for it)."""

    def log(self, level: int, message: str, *args: Any) -> None:
        LIBRDKAFKA.debug(message, *args)


def _on_error(error: KafkaError) -> None:
    LIBRDKAFKA.debug("client error: %s", error)


def quiet(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with librdkafka's lines and errors sent to Python logging at DEBUG."""
    return config | {"logger": _DebugLog(), "error_cb": _on_error}


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """librdkafka settings for any client: the connection (``kafka.client_config()``),
    quiet (:func:`quiet`)."""
    return quiet(kafka.client_config())


def unreachable_message(bootstrap_servers: str, waited: float) -> str:
    """The one line a user sees when no broker answers: where, which setting, what to do."""
    hosts = {server.rpartition(":")[0] for server in bootstrap_servers.split(",")}
    fix = (
        "start the local broker with 'stockpipe kafka up'"
        if hosts <= _LOCAL_HOSTS
        else "check that the brokers run and that this machine may reach them (the VM's "
        "firewall opens Kafka to the addresses in kafka_allowed_sources only)"
    )
    return (
        f"cannot reach Kafka at {bootstrap_servers} (STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS) "
        f"within {waited:g} s; {fix}"
    )


def require_reachable(kafka: KafkaSettings, timeout: float | None = None) -> None:
    """Return once a broker answers a metadata request.

    Args:
        timeout: seconds to wait (default ``STOCKPIPE_KAFKA__CONNECT_TIMEOUT_SECONDS``).

    Raises:
        KafkaUnreachable: none answered in time.
    """
    waited = kafka.connect_timeout_seconds if timeout is None else timeout
    admin = AdminClient(client_config(kafka))
    try:
        admin.list_topics(timeout=waited)
    except KafkaException as exc:
        LIBRDKAFKA.debug("metadata request failed: %s", exc)
        raise KafkaUnreachable(unreachable_message(kafka.bootstrap_servers, waited)) from None
