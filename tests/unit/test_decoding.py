"""The drain's decoder: its fast path never accepts what the contract rejects, and every
message, however broken, gets a verdict."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from confluent_kafka import Message
from hypothesis import given

from stockpipe.contracts import QuoteRejected, validate_quote
from stockpipe.drain.dead_letters import dead_letter_headers
from stockpipe.drain.decoding import decode_batch, precheck
from tests.fuzzing import bar, traffic
from tests.support import VALID_QUOTE

MAX_BYTES = 16 * 1024

VALID = VALID_QUOTE
ODD_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    1e308,
    float("nan"),
    float("inf"),
    "",
    "100",
    "abc",
    [],
    {},
    "2025-11-28T14:30:00",
    "2025-11-28 14:30:00Z",
    "2025-11-28T14:30:00.1234567Z",
    "1969-12-31T23:59:00Z",
    (datetime.now(UTC) + timedelta(days=5)).isoformat(),
    "brk.b",
    "BRK.B",
    "^GSPC",
    "X" * 16,
    "5m",
    "2h",
    "s" * 33,
    10**20,
    -0.0,
    2**53 + 1,
]


def mutations(rng: random.Random, n: int) -> list[dict]:
    records = [dict(VALID)]
    for _ in range(n):
        record = dict(VALID)
        for _ in range(rng.randint(1, 3)):
            action = rng.random()
            field = rng.choice(list(VALID))
            if action < 0.1:
                record.pop(field, None)
            elif action < 0.15:
                record["unexpected"] = 1
            else:
                record[field] = rng.choice(ODD_VALUES)
        records.append(record)
    return records


def contract_accepts(record: dict) -> bool:
    try:
        validate_quote(record)
    except QuoteRejected:
        return False
    return True


def test_precheck_is_never_looser_than_the_contract() -> None:
    rng = random.Random(20261122)
    records = mutations(rng, 3000)
    _, fast = precheck(records)
    verdicts = [contract_accepts(r) for r in records]
    loose = [r for r, f, v in zip(records, fast, verdicts, strict=True) if f and not v]
    assert loose == []
    assert fast[0]  # the plain valid record takes the fast path
    # The fast path is not empty: most untouched fields keep rows valid and fast.
    assert 0 < sum(fast) < len(records)


def test_precheck_takes_plain_batches_whole() -> None:
    records = [dict(VALID, symbol=s, volume=v) for s in ("AAPL", "MSFT") for v in range(500)]
    assert precheck(records)[1].all()


def as_messages(pairs: list[tuple[bytes | None, bytes | None]], first_offset: int = 0) -> list:
    return [
        Message(
            topic="prices",
            partition=0,
            offset=first_offset + i,
            key=key,
            value=value,
            timestamp=(1, 1_764_000_000_000),
        )
        for i, (key, value) in enumerate(pairs)
    ]


# A value of two lines: a batch holding it takes the per-message path for every message.
PER_MESSAGE_PATH = (b"X", b'{"symbol":\n"X"}')


def outcome(decoded) -> tuple[dict, dict]:
    accepted = {row["KAFKA_OFFSET"]: row for row in decoded.rows.to_pylist()}
    rejected = {r.message.offset(): r.reason for r in decoded.rejections}
    return accepted, rejected


@given(traffic(first=0))
def test_every_message_gets_the_same_verdict_on_the_fast_and_the_per_message_path(
    pairs: list,
) -> None:
    messages = as_messages(pairs)
    accepted, rejected = outcome(decode_batch(messages, MAX_BYTES))
    slow_accepted, slow_rejected = outcome(
        decode_batch(messages + as_messages([PER_MESSAGE_PATH], len(pairs)), MAX_BYTES)
    )
    slow_rejected.pop(len(pairs))
    assert accepted == slow_accepted
    assert rejected == slow_rejected
    assert sorted([*accepted, *rejected]) == list(range(len(pairs)))  # each message once

    for offset, (key, value) in enumerate(pairs):
        if (key, value) == bar(offset):
            assert offset in accepted, rejected.get(offset)  # a valid bar is never refused
        if offset in accepted:
            # What the drain accepted, the contract accepts from the raw bytes, keyed by symbol.
            quote = validate_quote(json.loads(value.decode("utf-8")))
            assert key == quote.symbol.encode() == accepted[offset]["SYMBOL"].encode()


@given(traffic(first=0))
def test_accepted_rows_are_valid_arrow_the_warehouse_can_store(pairs: list) -> None:
    decoded = decode_batch(as_messages(pairs), MAX_BYTES)
    decoded.rows.validate(full=True)  # valid UTF-8 in every string column
    for rejection in decoded.rejections:
        assert rejection.reason and rejection.detail
        dead_letter_headers(rejection)  # always sendable


def test_poison_pills_the_warehouse_refused_are_rejected_with_reasons() -> None:
    key, value = bar(0)  # volume 1000
    cases = {
        "invalid UTF-8 inside a string": (key, value.replace(b"simulated", b"simul\xffated")),
        "lone surrogate escape": (key, value.replace(b"simulated", b"simul\\ud800ated")),
        "byte-order mark": (key, "\ufeff".encode() + value),
        "duplicate name": (key, value[:-1] + b',"close":1.0}'),
        "30-digit volume": (key, value.replace(b'"volume":1000', b'"volume":' + b"9" * 30)),
        "deep nesting": (key, value.replace(b'"volume":1000', b'"volume":' + b"[" * 5000)),
        "no key": (None, value),
        "key is another symbol": (b"AAPL", value),
        "a bar from the future": (
            key,
            value.replace(b"2026-01-02T03:04:05Z", b"2024-03-04T14:29:59Z"),
        ),
    }
    expected = {
        "invalid UTF-8 inside a string": "undecodable",
        "lone surrogate escape": "undecodable",
        "byte-order mark": "invalid_json",
        "duplicate name": "duplicate_key",
        "30-digit volume": "out_of_range_volume",
        "deep nesting": "invalid_json",
        "no key": "key_not_symbol",
        "key is another symbol": "key_not_symbol",
        "a bar from the future": "ts_after_fetched_at",
    }
    for name, pair in cases.items():
        # Each behind valid bars, so the batch would take the fast path if it could.
        batch = as_messages([bar(2), pair, bar(3)])
        accepted, rejected = outcome(decode_batch(batch, MAX_BYTES))
        assert sorted(accepted) == [0, 2], name
        assert rejected == {1: expected[name]}, name


def test_a_fractional_volume_loads_from_version_2_and_is_refused_from_version_1() -> None:
    """Contract version 2 (fractional-share and crypto volumes) on the drain's fast path and
    its per-message path alike."""
    key, value = bar(0)
    version_1 = value.replace(b'"volume":1000', b'"volume":1000.25')
    fractional = version_1.replace(b'"schema_version":1', b'"schema_version":2')
    assert version_1 != fractional
    for tail in ([], [PER_MESSAGE_PATH]):
        batch = as_messages([bar(2), (key, fractional), (key, version_1), bar(3), *tail])
        accepted, rejected = outcome(decode_batch(batch, MAX_BYTES))
        assert accepted[1]["VOLUME"] == 1000.25
        assert rejected.get(2) == "volume_not_whole"
        assert sorted(accepted) == [0, 1, 3]
