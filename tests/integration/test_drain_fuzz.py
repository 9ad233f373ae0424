"""Fuzz the drain on the real broker and the real warehouse: valid bars with byte-level
mutations of them mixed in. After every example: each valid bar is in the warehouse once,
every other message is in the dead-letter topic with a reason, the drain finished, and the
stored offsets are at the end of every partition.

Quick by default; ``pytest --hypothesis-profile=long tests/integration/test_drain_fuzz.py``
runs the long profile.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from confluent_kafka.admin import AdminClient
from hypothesis import given, settings
from hypothesis import strategies as st

from stockpipe.contracts import Quote, QuoteRejected, validate_quote
from stockpipe.drain import drain_prices
from stockpipe.drain.offsets import partition_states, read_offsets
from stockpipe.settings import Settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.fuzzing import traffic
from tests.support import read_topic

pytestmark = pytest.mark.integration


def contract_accepts(key: bytes | None, value: bytes | None) -> Quote | None:
    """The bar if the contract accepts the message, reached independently of the drain's
    decoder; else None."""
    if value is None or len(value) > 16 * 1024:
        return None
    try:
        text = value.decode("utf-8")
        text.encode("utf-8")
        pairs: list = []
        payload = json.loads(text, object_pairs_hook=lambda p: pairs.append(p) or dict(p))
        if any(len(dict(p)) != len(p) for p in pairs) or not isinstance(payload, dict):
            return None
        for field in payload.values():
            if isinstance(field, str):
                field.encode("utf-8")
        quote = validate_quote(payload)
    except (UnicodeError, ValueError, RecursionError, QuoteRejected):
        return None
    return quote if key == quote.symbol.encode() else None


def test_fuzzed_traffic_lands_once_or_in_the_dead_letter_topic(env_settings: Settings) -> None:
    topic = env_settings.kafka.prices_topic
    producer = QuoteProducer(env_settings.kafka)
    admin = AdminClient(env_settings.kafka.client_config())
    expected_bars: set[tuple[str, str]] = set()
    rejected = 0

    with Warehouse.connect(env_settings, "setup") as warehouse:
        setup_warehouse(warehouse, env_settings)

        @settings(max_examples=settings.default.max_examples // 2 or 1)
        @given(st.data())
        def example(data: st.DataObject) -> None:
            nonlocal rejected
            pairs = data.draw(traffic(first=0))  # bars repeat across examples: loaded once
            for key, value in pairs:
                if quote := contract_accepts(key, value):
                    expected_bars.add((quote.symbol, f"{quote.ts:%Y-%m-%dT%H:%M:%SZ}"))
                else:
                    rejected += 1
            producer.publish_raw((key, value, None) for key, value in pairs)

            report = drain_prices(env_settings, warehouse, max_records=7)
            assert report.stopped_because.startswith("caught up"), report.summary()

            rows = warehouse.duck.execute(  # DuckDB SQL: the embedded warehouse's own
                "select symbol, strftime(ts, '%Y-%m-%dT%H:%M:%SZ') from RAW.STOCK_PRICES"
            ).fetchall()
            assert Counter(rows) == Counter(expected_bars)  # each valid bar once, nothing else
            ends = {p: s.latest for p, s in partition_states(admin, topic).items()}
            stored = {p: o.next_offset for (_, p), o in read_offsets(warehouse, topic).items()}
            assert stored == {p: end for p, end in ends.items() if end}  # at the end of each

        example()

    letters = read_topic(env_settings, env_settings.kafka.dlq_topic)
    sources = {
        (dict(m.headers())["dlq.source.partition"], dict(m.headers())["dlq.source.offset"])
        for m in letters
    }
    assert len(letters) == len(sources) == rejected  # each once, none lost
    assert all(dict(m.headers())["dlq.reason"] for m in letters)
    assert rejected > 0  # the traffic really was broken
