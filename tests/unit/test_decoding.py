"""The drain's vectorised pre-check never accepts what the contract rejects."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from stockpipe.contracts import QuoteRejected, validate_quote
from stockpipe.drain.decoding import precheck
from tests.support import VALID_QUOTE

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
