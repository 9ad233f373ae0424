"""The exactly-once scaffolding the broker tier and the Snowflake tier share: publishing
valid and poisoned bars, draining in-process or as `stockpipe drain`, a ledger of what the
topic holds to check the warehouse against, and a warehouse connection that fails on cue."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb

from stockpipe.drain import drain_prices
from stockpipe.drain.offsets import read_offsets
from stockpipe.settings import Settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import (
    distinct_bar_messages,
    read_topic,
    set_up_warehouse,
    warehouse_state_of,
)


def publish(settings: Settings, count: int, start: int = 0, **kwargs) -> None:
    messages = ((k, v, None) for k, v in distinct_bar_messages(count, start=start, **kwargs))
    QuoteProducer(settings.kafka).publish_raw(messages)


def drain_once(settings: Settings, warehouse: Warehouse | None = None, **kwargs):
    if warehouse is not None:
        return drain_prices(settings, warehouse, **kwargs)
    with Warehouse.connect(settings, "setup") as wh:
        setup_warehouse(wh, settings)
        return drain_prices(settings, wh, **kwargs)


DRAIN_COMMAND = [sys.executable, "-m", "stockpipe.cli", "drain", "--max-records", "500"]


def run_drain(**env: str) -> subprocess.CompletedProcess:
    """`stockpipe drain` to its end, with ``env`` added to this test's environment."""
    return subprocess.run(
        DRAIN_COMMAND, env=os.environ | env, capture_output=True, text=True, timeout=300
    )


def kill_drain_after_batches(batches: int, **env: str) -> subprocess.Popen:
    """Start `stockpipe drain` and SIGKILL it once it has reported ``batches`` commits."""
    process = subprocess.Popen(
        DRAIN_COMMAND,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    seen = 0
    for line in process.stdout:
        seen += line.lstrip().startswith("batch ")
        if seen == batches:
            break
    assert seen == batches, "the drain ended before it was killed"
    return process


def publish_with_poison(settings: Settings, total: int, every: int = 97) -> None:
    """``total`` messages: valid distinct bars, and every ``every``-th one broken, so that
    every 500-message batch has dead letters."""
    messages = []
    for i, (key, value) in enumerate(distinct_bar_messages(total)):
        if i % every == every - 1:
            value = value.replace(b'"volume"', b'"volume":-1,"x"')  # not the contract
        messages.append((key, value, None))
    QuoteProducer(settings.kafka).publish_raw(messages)


class Ledger:
    """What the topic holds, read once: which offsets are valid bars and which poison."""

    def __init__(self, settings: Settings):
        self.settings = settings
        set_up_warehouse(settings)  # the deployment's one-time set-up
        self.poison: dict[int, set[int]] = {}
        self.valid: dict[int, set[int]] = {}
        for message in read_topic(settings, settings.kafka.prices_topic):
            bad = b'"x"' in message.value()
            book = self.poison if bad else self.valid
            book.setdefault(message.partition(), set()).add(message.offset())
        self.total = sum(map(len, self.valid.values())) + sum(map(len, self.poison.values()))

    def check(self) -> int:
        """Exactly once at this instant: the warehouse holds the valid bars below each stored
        offset, each once, and nothing else; the poison below it is in the dead-letter topic.

        Returns:
            the messages the stored offsets cover.
        """
        topic = self.settings.kafka.prices_topic
        with Warehouse.connect(self.settings, "setup") as warehouse:
            stored = {p: o.next_offset for (_, p), o in read_offsets(warehouse, topic).items()}
            rows, distinct, _ = warehouse_state_of(warehouse, topic)
        below = sum(o < stored.get(p, 0) for p, offsets in self.valid.items() for o in offsets)
        assert rows == distinct == below
        sources = {
            (int(h["dlq.source.partition"]), int(h["dlq.source.offset"]))
            for h in (
                dict(m.headers()) for m in read_topic(self.settings, self.settings.kafka.dlq_topic)
            )
        }
        for partition, offsets in self.poison.items():
            for offset in offsets:
                if offset < stored.get(partition, 0):
                    assert (partition, offset) in sources, (partition, offset)
        return sum(stored.values())


class FlakyConnection:
    """The embedded warehouse's DuckDB connection, failing the first ``times`` statements
    that match, as a database file that cannot be written does (IOException).

    It is the boundary every statement of a drain crosses on the embedded warehouse.
    """

    ERRORS = duckdb.IOException

    def __init__(self, real, match: str, times: int) -> None:
        self.real, self.match, self.left = real, match, times

    def execute(self, sql, *args):
        if self.match in sql.lower() and self.left > 0:
            self.left -= 1
            raise duckdb.IOException("injected: could not write to the database file")
        return self.real.execute(sql, *args)

    def __getattr__(self, name):  # everything else is the real connection's
        return getattr(self.real, name)
