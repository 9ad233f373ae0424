"""The forming minute: each symbol's last traded price within about a second.

Live ingest publishes the bars of the minute still forming to the forming topic every
``source.live_forming_seconds`` (never to the prices topic: they are not final). The live
tier reads that topic from its end, keeps the newest per symbol, and writes them beside its
snapshot (``forming.parquet``) at most every :data:`WRITE_EVERY_SECONDS`, for the
dashboard's last price and its age.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pandas as pd

from stockpipe.live.snapshot import write_frame
from stockpipe.settings import Settings

log = logging.getLogger(__name__)
WRITE_EVERY_SECONDS = 0.5


class FormingPrices:
    """A thread following the forming topic into ``<snapshot>/forming.parquet``.

    Args:
        settings: the installation's (broker, topic).
        directory: the live snapshot's directory.
    """

    def __init__(self, settings: Settings, directory: Path):
        self.settings = settings
        self.directory = directory
        self.latest: dict[str, dict] = {}
        self.messages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forming-prices", daemon=True)

    def start(self) -> FormingPrices:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        kafka = self.settings.kafka
        consumer = Consumer(
            kafka.client_config()
            | {
                # Assigned, not subscribed, and committing nothing: it never joins a group
                # (so needs no group ACL); a preview read from its end, not a record.
                "group.id": "stockpipe-forming",
                "enable.auto.commit": False,
            }
        )
        topic = consumer.list_topics(kafka.forming_topic, timeout=10).topics[kafka.forming_topic]
        consumer.assign(
            [TopicPartition(kafka.forming_topic, p, OFFSET_END) for p in topic.partitions]
        )
        written = 0.0
        dirty = False
        try:
            while not self._stop.is_set():
                for message in consumer.consume(500, timeout=0.25):
                    if message.error() is not None:
                        continue
                    try:
                        bar = json.loads(message.value())
                        symbol = bar["symbol"]
                    except (ValueError, KeyError, TypeError):
                        continue
                    known = self.latest.get(symbol)
                    if known is None or (bar["ts"], bar["fetched_at"]) >= (
                        known["ts"],
                        known["fetched_at"],
                    ):
                        self.latest[symbol] = bar
                        dirty = True
                    self.messages += 1
                if dirty and time.monotonic() - written >= WRITE_EVERY_SECONDS:
                    write_frame(self.directory, "forming", self.frame())
                    written, dirty = time.monotonic(), False
        except Exception:  # the preview stops; the live tier and its bars go on
            log.exception("the forming prices stopped")
        finally:
            consumer.close()

    def frame(self) -> pd.DataFrame:
        """The newest forming bar per symbol (``ts`` its minute, ``fetched_at`` when it stood
        so: the last trade's price is its close)."""
        frame = pd.DataFrame(list(self.latest.values()))
        for column in ("ts", "fetched_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame
