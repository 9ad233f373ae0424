"""Trend alerts: conditions on the latest session per symbol, published once to Kafka.

Rules:
  * ``day_move``: the absolute change on the day is at least the threshold (percent);
  * ``sma_20_50_cross_up`` / ``sma_20_50_cross_down``: SMA 20 of daily closes crossed
    SMA 50 between the previous session and this one.

Each (symbol, session, rule) is published once: ``MARTS.ALERTS_SENT`` remembers what
went out. A crash between publishing and recording can repeat an alert once; the message
key (``symbol|session|rule``) lets consumers drop such a repeat.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from stockpipe.settings import Settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.base import Portable

log = logging.getLogger(__name__)

_LATEST_WITH_PREVIOUS = """
with trends as (
    select
        symbol, session_date, close, change_pct, sma_20, sma_50,
        lag(sma_20) over (partition by symbol order by session_date) as previous_sma_20,
        lag(sma_50) over (partition by symbol order by session_date) as previous_sma_50
    from MARTS.DAILY_TRENDS
)
select symbol, session_date, close, change_pct, sma_20, sma_50, previous_sma_20, previous_sma_50
from trends
qualify row_number() over (partition by symbol order by session_date desc) = 1
order by symbol
"""


@dataclass(frozen=True)
class Alert:
    symbol: str
    session_date: date
    rule: str
    message: str
    value: float

    def key(self) -> bytes:
        return f"{self.symbol}|{self.session_date}|{self.rule}".encode()

    def to_json(self) -> bytes:
        payload = asdict(self) | {"session_date": str(self.session_date), "kind": "trend"}
        return json.dumps(payload).encode()


def day_move(
    symbol: str, session: date, change_pct: float | None, threshold_pct: float, detail: str
) -> Alert | None:
    """The ``day_move`` alert of a symbol's session when it moved at least
    ``threshold_pct`` (one key per session, so the trends flow and the live tier send it
    once between them); None when it moved less or there is no change yet."""
    if change_pct is None or change_pct != change_pct or abs(change_pct) < threshold_pct:
        return None
    return Alert(
        symbol,
        session,
        "day_move",
        f"{symbol} moved {change_pct:+.2f}% on {session} ({detail})",
        float(change_pct),
    )


def find_alerts(warehouse: Warehouse, day_change_pct: float) -> list[Alert]:
    """The conditions that hold on each symbol's latest session."""
    alerts = []
    for row in warehouse.query_frame(_LATEST_WITH_PREVIOUS).itertuples():
        session = row.session_date
        moved = day_move(
            row.symbol, session, row.change_pct, day_change_pct, f"close {row.close:.2f}"
        )
        if moved is not None:
            alerts.append(moved)
        values = (row.sma_20, row.sma_50, row.previous_sma_20, row.previous_sma_50)
        if all(v is not None and v == v for v in values):
            if row.previous_sma_20 <= row.previous_sma_50 and row.sma_20 > row.sma_50:
                alerts.append(
                    Alert(
                        row.symbol,
                        session,
                        "sma_20_50_cross_up",
                        f"{row.symbol}: SMA 20 crossed above SMA 50 on {session}",
                        float(row.sma_20 - row.sma_50),
                    )
                )
            elif row.previous_sma_20 >= row.previous_sma_50 and row.sma_20 < row.sma_50:
                alerts.append(
                    Alert(
                        row.symbol,
                        session,
                        "sma_20_50_cross_down",
                        f"{row.symbol}: SMA 20 crossed below SMA 50 on {session}",
                        float(row.sma_20 - row.sma_50),
                    )
                )
    return alerts


# Alerts ride along with a result; they must not hold it up for long (librdkafka's own
# defaults retry for two minutes).
ALERT_CONNECT_SECONDS = 5.0
ALERT_DELIVERY_SECONDS = 10.0


@dataclass(frozen=True)
class Delivery:
    """What became of an alert: ``sent``, and in words (why not, when it was not)."""

    sent: bool
    text: str


def alert_producer(settings: Settings) -> QuoteProducer:
    """A producer that gives up on an alert within seconds, for a process that sends alerts
    often (the live tier, after every commit) and keeps it.

    Raises:
        KafkaUnreachable: no broker answered within :data:`ALERT_CONNECT_SECONDS`.
    """
    kafka = settings.kafka.model_copy(update={"connect_timeout_seconds": ALERT_CONNECT_SECONDS})
    return QuoteProducer(kafka, **{"message.timeout.ms": int(ALERT_DELIVERY_SECONDS * 1000)})


def send_best_effort(
    settings: Settings,
    messages: list[tuple[bytes, bytes, None]],
    producer: QuoteProducer | None = None,
) -> Delivery:
    """Send ``messages`` (key, value, headers) to the alerts topic within a few seconds.

    Args:
        producer: an :func:`alert_producer` to reuse (default: one made for this call).

    Returns:
        sent or not, and why not (for the caller to report). Never raises for Kafka's sake:
        an alert that cannot be sent does not change what it reports.
    """
    from stockpipe.streaming.clients import KafkaUnreachable
    from stockpipe.streaming.producer import PublishError

    topic = settings.kafka.alerts_topic
    try:
        (producer or alert_producer(settings)).publish_raw(
            messages, topic=topic, flush_timeout=ALERT_DELIVERY_SECONDS + 5
        )
    except (KafkaUnreachable, PublishError) as exc:
        return Delivery(False, f"alert not sent to {topic}: {exc}")
    return Delivery(True, f"alert sent to {topic}")


@dataclass(frozen=True)
class AlertsSent:
    """What one round of alerts did.

    Attributes:
        sent: the alerts published now (those sent before are not sent again).
        waiting: new alerts Kafka could not take now; a later round sends them.
        problem: why they wait, in words (None when nothing waits).
    """

    sent: list[Alert]
    waiting: list[Alert]
    problem: str | None = None


def publish_new_alerts(
    settings: Settings,
    warehouse: Warehouse,
    alerts: list[Alert],
    producer: QuoteProducer | None = None,
) -> AlertsSent:
    """Publish the alerts not sent before to the alerts topic. When Kafka cannot take them
    now they are not recorded as sent: the next round (a later build, the next commit of the
    live tier) finds and sends them."""
    if not alerts:
        return AlertsSent([], [])
    # Only the alerts' sessions: the live tier asks after every commit, the table grows.
    sessions = sorted({a.session_date for a in alerts})
    sent = {
        (symbol, str(session), rule)
        for symbol, session, rule in warehouse.query(
            Portable(
                "select symbol, session_date, rule from MARTS.ALERTS_SENT where session_date in ("
                + ", ".join(["%s"] * len(sessions))
                + ")"
            ),
            sessions,
        )
    }
    new = [a for a in alerts if (a.symbol, str(a.session_date), a.rule) not in sent]
    if not new:
        return AlertsSent([], [])
    delivery = send_best_effort(settings, [(a.key(), a.to_json(), None) for a in new], producer)
    if not delivery.sent:
        log.warning("%d alert(s) wait for the next round: %s", len(new), delivery.text)
        return AlertsSent([], new, delivery.text)
    now = datetime.now(UTC).replace(tzinfo=None)
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(new))
    params: list[object] = []
    for a in new:
        params += [a.symbol, a.session_date, a.rule, a.message, now]
    warehouse.execute(
        Portable(
            "insert into MARTS.ALERTS_SENT (symbol, session_date, rule, message, sent_at) "
            f"values {values}"
        ),
        params,
    )
    return AlertsSent(new, [])


def send_new_alerts(settings: Settings, warehouse: Warehouse) -> AlertsSent:
    """The trends' alerts after a build: each condition that holds on the latest sessions
    (:func:`find_alerts` at ``trends.alert_day_change_pct``), sent once. What the trends
    flow and ``stockpipe trends`` both do."""
    found = find_alerts(warehouse, settings.trends.alert_day_change_pct)
    return publish_new_alerts(settings, warehouse, found)
