"""The dead-letter topic: every message the drain could not accept, unchanged, with why.

Each dead letter keeps the original key and value byte for byte; its headers say why
(``dlq.reason``, a short stable code; ``dlq.error.class``; ``dlq.error.message``) and where
from (``dlq.source.topic``, ``dlq.source.partition``, ``dlq.source.offset``). Delivery is
at least once: a drain that crashes after the dead letters were acknowledged but before its
commit sends them again on the next run.

Reason codes (README, section "Dead letters", has an example of each):

* ``empty_value``, ``oversized``: no value, or more than ``drain.max_message_bytes``;
* ``undecodable``: not UTF-8, or a lone UTF-16 surrogate escape (``"\\ud800"``) in a text;
* ``invalid_json``, ``not_an_object``, ``duplicate_key``: not one JSON object with unique names;
* ``key_not_symbol``: the message's key is missing or is not the bar's symbol;
* the contract's verdicts (:func:`stockpipe.contracts.reason_of`): ``missing_<field>``,
  ``bad_<field>``, ``out_of_range_<field>``, ``non_finite_<field>``, ``unexpected_field``,
  ``high_below_low``, ``ohlc_inconsistent``, ``ts_before_1970``, ``ts_in_future``,
  ``fetched_at_before_1970``, ``fetched_at_in_future``, ``timestamp_without_timezone``,
  ``timestamp_out_of_range``, ``volume_not_whole``, and pydantic's type errors as
  ``<error type>_<field>`` (e.g. ``float_parsing_volume``, ``string_type_source``);
* ``warehouse_rejected``: the decoder accepted it but the warehouse refused the value; the
  database's own message is in ``dlq.error.message``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Message

from stockpipe.streaming.producer import QuoteProducer

WAREHOUSE_REJECTED = "warehouse_rejected"


@dataclass
class Rejection:
    """A message the drain refused, with the reason code and a readable message."""

    message: Message
    reason: str
    error_class: str
    detail: str


def _text(value: str, limit: int = 1000) -> bytes:
    # A reason's detail may quote the sender's bytes (a field name with a lone surrogate):
    # escape what UTF-8 cannot hold rather than fail to send the dead letter.
    return value[:limit].encode("utf-8", errors="backslashreplace")


def dead_letter_headers(rejection: Rejection) -> list[tuple[str, bytes]]:
    message = rejection.message
    return [
        ("dlq.reason", _text(rejection.reason)),
        ("dlq.error.class", _text(rejection.error_class)),
        ("dlq.error.message", _text(rejection.detail)),
        ("dlq.source.topic", _text(message.topic())),
        ("dlq.source.partition", str(message.partition()).encode()),
        ("dlq.source.offset", str(message.offset()).encode()),
    ]


class DeadLetterTopic:
    """Sends rejected messages to the dead-letter topic and waits for every acknowledgement.

    Args:
        producer: an idempotent producer (acks=all); None with no topic.
        topic: the dead-letter topic; None for a drain whose rejections another drain
            sends (the live tier's: the drain of record reads the same messages).
    """

    def __init__(self, producer: QuoteProducer | None, topic: str | None):
        self.producer = producer
        self.topic = topic

    def send(
        self, rejections: list[Rejection], before_flush: Callable[[], None] | None = None
    ) -> None:
        """Publish each rejected message unchanged (key and value) with its reason in headers.

        Args:
            before_flush: called once every dead letter is handed to the producer and before
                their acknowledgements are awaited (the drain's crash tests kill there).

        Raises:
            PublishError: when the dead-letter topic did not acknowledge them all; the batch
                is then not committed, so nothing is lost.
        """
        if not rejections or self.producer is None or self.topic is None:
            return
        self.producer.publish_raw(
            ((r.message.key(), r.message.value(), dead_letter_headers(r)) for r in rejections),
            topic=self.topic,
            before_flush=before_flush,
        )
