"""Drain on the real broker into the embedded warehouse: loads once, dead-letters bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer

from stockpipe import market_calendar as mc
from stockpipe.drain import drain_prices
from stockpipe.drain.offsets import read_offsets
from stockpipe.ingest import check_bars
from stockpipe.settings import Settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Portable, Warehouse
from stockpipe.warehouse.setup import DEFAULT_SQL_DIR, setup_warehouse
from tests.support import read_topic

pytestmark = pytest.mark.integration
SESSION = mc.session("2025-11-26")
SYMBOLS = ["AAPL", "MSFT", "NVDA", "XOM"]


def publish_session(settings: Settings, fetched_at: datetime | None = None) -> int:
    bars = SimulatedMarket().fetch(SYMBOLS, SESSION.open, SESSION.close)
    quotes = check_bars(bars, "simulated", fetched_at=fetched_at).quotes
    return QuoteProducer(settings.kafka).publish(quotes).published


def drain(settings: Settings):
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings)
        report = drain_prices(settings, warehouse, max_records=1000)
        rows = warehouse.query_frame(
            "select symbol, ts, close, fetched_at, kafka_partition, kafka_offset "
            "from RAW.STOCK_PRICES"
        )
        offsets = read_offsets(warehouse, settings.kafka.prices_topic)
    return report, rows, offsets


def test_drain_loads_every_bar_once_and_resumes_from_warehouse_offsets(
    env_settings: Settings,
) -> None:
    published = publish_session(env_settings, datetime(2025, 11, 26, 21, 1, tzinfo=UTC))
    assert published == 4 * 390

    report, rows, offsets = drain(env_settings)
    assert report.messages == published and report.inserted == published
    assert report.batches >= 2  # max_records=1000 splits the backlog
    assert len(rows) == published
    assert not rows.duplicated(["symbol", "ts"]).any()
    assert sum(o.next_offset for o in offsets.values()) == published

    # Nothing new: a second run reads nothing and changes nothing.
    report, rows_again, _ = drain(env_settings)
    assert report.messages == 0
    assert len(rows_again) == published

    # The same session fetched again later (ingest refetches the day): updated, not added.
    publish_session(env_settings, datetime(2025, 11, 26, 21, 30, tzinfo=UTC))
    report, rows_final, offsets = drain(env_settings)
    assert report.messages == published
    assert (report.inserted, report.replaced) == (0, published)
    assert len(rows_final) == published
    assert rows_final["fetched_at"].max() == datetime(2025, 11, 26, 21, 30)
    assert sum(o.next_offset for o in offsets.values()) == 2 * published


# What `stockpipe drain` does in its own process, and which heavy modules it loaded.
DRAIN_COMMAND = """
import json, sys
from stockpipe.cli import main
code = main(["drain", "--max-records", "1000"])
heavy = ("fakesnow", "sqlglot", "snowflake.connector", "exchange_calendars", "pandas")
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def test_the_drain_command_stays_off_fakesnow_the_snowflake_connector_and_pandas(
    env_settings: Settings,
) -> None:
    # Memory: those modules are ~70 MB of a drain's 250 MB budget, pandas ~35 (bench_drain).
    # A drain on a set-up warehouse speaks to DuckDB directly and needs none of them; nor
    # does it ask the exchange calendar (its import is most of a command's start-up).
    with Warehouse.connect(env_settings, "setup") as warehouse:
        setup_warehouse(warehouse, env_settings)
    published = publish_session(env_settings)
    done = subprocess.run(
        [sys.executable, "-c", DRAIN_COMMAND], capture_output=True, text=True, timeout=120
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}, done.stdout + done.stderr
    assert f"{published} new bars" in done.stdout
    with Warehouse.connect(env_settings) as warehouse:
        assert warehouse.query(Portable("select count(*) from RAW.STOCK_PRICES"))[0][0] == published


def test_bad_messages_go_to_the_dead_letter_topic_with_the_reason(
    env_settings: Settings,
) -> None:
    good = check_bars(
        SimulatedMarket().fetch(["AAPL"], SESSION.open, SESSION.minutes[20]), "simulated"
    ).quotes
    valid = json.loads(good[0].to_json())
    poison = [
        (b"AAPL", b"\xff\xfe not utf-8", "undecodable"),
        (b"AAPL", b"{not json", "invalid_json"),
        (b"AAPL", b"[1, 2]", "not_an_object"),
        (b"AAPL", json.dumps({**valid, "high": 1.0, "low": 2.0}).encode(), "high_below_low"),
        (b"AAPL", json.dumps({**valid, "volume": -5}).encode(), "out_of_range_volume"),
        (
            b"AAPL",
            json.dumps({k: v for k, v in valid.items() if k != "close"}).encode(),
            "missing_close",
        ),
        (b"AAPL", b'{"pad": "' + b"x" * 20_000 + b'"}', "oversized"),
        (b"AAPL", json.dumps({**valid, "close": float("nan")}).encode(), "non_finite_close"),
        (b"AAPL", json.dumps({**valid, "high": float("inf")}).encode(), "non_finite_high"),
        (b"AAPL", json.dumps({**valid, "open": 0}).encode(), "out_of_range_open"),
        (b"AAPL", json.dumps({**valid, "volume": "lots"}).encode(), "float_parsing_volume"),
        (b"AAPL", json.dumps({**valid, "ts": "2999-01-01T00:00:00Z"}).encode(), "ts_in_future"),
        (b"AAPL", json.dumps({**valid, "ts": "1960-01-01T00:00:00Z"}).encode(), "ts_before_1970"),
        (b"aapl", json.dumps({**valid, "symbol": "aapl$"}).encode(), "bad_symbol"),
        (
            b"AAPL",
            json.dumps({**valid, "ts": "2025-11-26T14:30:00"}).encode(),
            "timestamp_without_timezone",
        ),
        (b"AAPL", None, "empty_value"),
    ]
    producer = QuoteProducer(env_settings.kafka)
    producer.publish(good[:10])
    producer.publish_raw([(k, v, None) for k, v, _ in poison])
    producer.publish(good[10:])

    report, rows, offsets = drain(env_settings)
    assert len(rows) == 20
    assert report.rejected == {reason: 1 for _, _, reason in poison}
    assert sum(o.next_offset for o in offsets.values()) == 20 + len(poison)

    consumer = Consumer(
        env_settings.kafka.client_config()
        | {"group.id": "dlq-reader", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([env_settings.kafka.dlq_topic])
    letters = []
    for _ in range(40):
        letters += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
        if len(letters) >= len(poison):
            break
    consumer.close()
    assert len(letters) == len(poison)
    by_reason = {dict(m.headers())["dlq.reason"].decode(): m for m in letters}
    for key, value, reason in poison:
        letter = by_reason[reason]
        headers = dict(letter.headers())
        assert letter.key() == key and letter.value() == value  # unchanged
        assert headers["dlq.source.topic"].decode() == env_settings.kafka.prices_topic
        assert int(headers["dlq.source.offset"]) >= 10
        assert headers["dlq.error.message"]


def test_rows_the_warehouse_refuses_are_isolated_dead_lettered_and_the_rest_loads(
    env_settings: Settings,
) -> None:
    # A warehouse stricter than the contract (a CHECK constraint here; on Snowflake, e.g. a
    # value a column cannot hold): the decoder accepts two bars the warehouse refuses.
    with Warehouse.connect(env_settings, "setup") as warehouse:
        setup_warehouse(warehouse, env_settings)
        ddl = (DEFAULT_SQL_DIR / "010_raw_stock_prices.sql").read_text()
        strict = ddl.replace(
            "source           varchar(32)   not null,",
            "source varchar(32) not null check (source <> 'refused'),",
        )
        assert strict != ddl
        warehouse.execute("drop table RAW.STOCK_PRICES")
        warehouse.execute(strict)
    good = check_bars(
        SimulatedMarket().fetch(["AAPL", "MSFT"], SESSION.open, SESSION.minutes[300]), "simulated"
    ).quotes
    refused = [q.model_copy(update={"source": "refused"}) for q in (good[7], good[401])]
    kept = [q for i, q in enumerate(good) if i not in (7, 401)]
    QuoteProducer(env_settings.kafka).publish([*kept[:300], refused[0], *kept[300:], refused[1]])

    report, rows, offsets = drain(env_settings)  # 1,000-record batches: both in batch one

    assert len(rows) == len(kept) and report.inserted == len(kept)
    assert report.rejected == {"warehouse_rejected": 2}
    assert sum(o.next_offset for o in offsets.values()) == len(good)  # offsets at the end
    letters = read_topic(env_settings, env_settings.kafka.dlq_topic)
    assert sorted(m.value() for m in letters) == sorted(q.to_json() for q in refused)
    for letter in letters:
        headers = dict(letter.headers())
        assert headers["dlq.reason"] == b"warehouse_rejected"
        assert b"CHECK constraint" in headers["dlq.error.message"]  # the database's words
        assert headers["dlq.error.class"] == b"ConstraintException"
