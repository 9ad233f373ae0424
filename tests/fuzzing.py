"""Hypothesis strategies for the drain's fuzz tests: valid bars, and the same bars broken at
the byte level, as (key, value) Kafka messages.

Profiles: ``ci`` (the default, a quick run) and ``long``; choose with
``pytest --hypothesis-profile=long``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci")

BASE = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
FETCHED_AT = "2026-01-02T03:04:05Z"

# Bytes that are not UTF-8: a stray continuation byte, an overlong '/', a UTF-8-encoded
# surrogate, a truncated sequence, bytes never used.
INVALID_UTF8 = [b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xff", b"\xfe\xff"]
# JSON escapes that decode to text UTF-8 cannot hold, or to NUL.
ODD_ESCAPES = [b"\\ud800", b"\\udfff", b"\\ud83d", b"\\u0000", b"\\uFFFF"]
ODD_NUMBERS = [
    b"1e400",
    b"-1e400",
    b"-0",
    b"-0.0",
    b"123456789012345678901234567890",
    b"-123456789012345678901234567890",
    b"9223372036854775808",
    b"1e-400",
    b"0.1e1",
    b"NaN",
    b"Infinity",
]
BOM = "\ufeff".encode()


def bar(n: int) -> tuple[bytes, bytes]:
    """The ``n``-th valid bar: its own symbol and minute, so no two bars share a key."""
    symbol = f"F{n % 997:03d}X{n // 997}"
    ts = (BASE + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
    close = round(10 + (n * 7919 % 49_000) / 100, 2)
    value = {
        "symbol": symbol,
        "ts": ts,
        "open": close,
        "high": round(close + 0.5, 2),
        "low": round(close - 0.5, 2),
        "close": close,
        "volume": 1000 + n % 777,
        "interval": "1m",
        "source": "simulated",
        "fetched_at": FETCHED_AT,
        "schema_version": 1,
    }
    return symbol.encode(), json.dumps(value, separators=(",", ":")).encode()


@st.composite
def mutated(draw: st.DrawFn, key: bytes, value: bytes) -> tuple[bytes | None, bytes | None]:
    """``(key, value)`` broken in one of the ways a producer, a disk or a network breaks it."""
    at = draw(st.integers(0, len(value)))
    kind = draw(
        st.sampled_from(
            [
                "bit_flip",
                "truncate",
                "invalid_utf8",
                "odd_escape",
                "nul_byte",
                "bom",
                "duplicate_key",
                "odd_number",
                "deep_nesting",
                "long_string",
                "wrong_key",
                "no_key",
                "empty",
            ]
        )
    )
    if kind == "bit_flip" and value:
        i = min(at, len(value) - 1)
        flipped = value[i] ^ (1 << draw(st.integers(0, 7)))
        return key, value[:i] + bytes([flipped]) + value[i + 1 :]
    if kind == "truncate":
        return key, value[:at]
    if kind == "invalid_utf8":
        return key, value[:at] + draw(st.sampled_from(INVALID_UTF8)) + value[at:]
    if kind == "odd_escape":
        # Inside the source string, or anywhere at all.
        inside = draw(st.booleans())
        escape = draw(st.sampled_from(ODD_ESCAPES))
        if inside:
            return key, value.replace(b'"simulated"', b'"simu' + escape + b'lated"')
        return key, value[:at] + escape + value[at:]
    if kind == "nul_byte":
        return key, value[:at] + b"\x00" + value[at:]
    if kind == "bom":
        return key, BOM + value
    if kind == "duplicate_key":
        name = draw(st.sampled_from(["symbol", "close", "volume", "ts", "source"]))
        repeat = json.dumps(json.loads(value)[name]).encode()
        return key, value[:-1] + b',"' + name.encode() + b'":' + repeat + b"}"
    if kind == "odd_number":
        name = draw(st.sampled_from([b"volume", b"close", b"schema_version", b"open"]))
        number = draw(st.sampled_from(ODD_NUMBERS))
        start = value.index(b'"' + name + b'":') + len(name) + 3
        end = min(i for i in (value.find(b",", start), value.find(b"}", start)) if i >= 0)
        return key, value[:start] + number + value[end:]
    if kind == "deep_nesting":
        depth = draw(st.integers(2, 6000))
        start = value.index(b'"volume":') + len(b'"volume":')
        end = value.index(b",", start)
        return key, value[:start] + b"[" * depth + b"1" + b"]" * depth + value[end:]
    if kind == "long_string":
        length = draw(st.integers(33, 20_000))
        return key, value.replace(b'"simulated"', b'"' + b"s" * length + b'"')
    if kind == "wrong_key":
        return draw(st.sampled_from([b"AAPL", key.lower(), key + b" ", b""])), value
    if kind == "no_key":
        return None, value
    return key, None  # an empty (null) value


@st.composite
def traffic(
    draw: st.DrawFn, first: int, max_size: int = 30
) -> list[tuple[bytes | None, bytes | None]]:
    """Valid bars numbered from ``first`` with broken ones mixed in, in a random order."""
    count = draw(st.integers(1, max_size))
    messages = []
    for n in range(first, first + count):
        key, value = bar(n)
        if draw(st.integers(0, 2)) == 0:
            messages.append(draw(mutated(key, value)))
        else:
            messages.append((key, value))
    return messages
