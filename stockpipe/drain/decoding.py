"""Decode a batch of Kafka messages into warehouse rows, fast, with the contract's verdicts.

The contract (``stockpipe.contracts.Quote``, declared in ``stockpipe.quote_spec``) is the
judge of what is valid. Running pydantic on every message would cap the drain at a few tens
of thousands of messages per second, so a vectorised pre-check runs first: it accepts only
rows that are plainly valid, with the canonical JSON types, under rules that are *stricter
or equal* to the contract's.
Every row it does not accept goes through the contract itself, which either accepts it
(e.g. a number sent as a string, which pydantic's lax mode allows) or rejects it with the
reason. So the outcome is always the contract's; the pre-check only decides how fast.

Everything here is Arrow (pyarrow.compute), not pandas: a batch's columns are Arrow
buffers that DuckDB and Parquet take as they are. (pyarrow itself still imports pandas,
when installed, the first time it converts a Python value: ~35 MB of the drain's memory.)
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Message
from pyarrow import json as pa_json

from stockpipe.contracts import Quote, QuoteRejected, validate_quote
from stockpipe.drain.dead_letters import Rejection
from stockpipe.quote_spec import (
    EARLIEST_INSTANT,
    FIELD_NAMES,
    FIELDS,
    INTERVALS,
    MAX_CLOCK_SKEW,
    MAX_VOLUME,
    PRICE_FIELDS,
    SOURCE_PATTERN,
    SYMBOL_PATTERN,
)
from stockpipe.warehouse.raw_schema import RAW_ARROW_SCHEMA

NUMBER_FIELDS = tuple(f.name for f in FIELDS if f.json_type in ("number", "integer"))
TEXT_FIELDS = tuple(f for f in FIELD_NAMES if f not in NUMBER_FIELDS)  # timestamps too
# The only timestamp spelling the fast path takes: ISO-8601 with seconds, up to
# microseconds, and an explicit zone. Anything else is for the contract to judge.
ISO_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})$"
UTC_MICROS = pa.timestamp("us", tz="UTC")
# What the fast path parses with: the contract's fields in their canonical JSON types.
# Numbers as float64 (exact for every integer below 2**53; the pre-check enforces that).
ARROW_SCHEMA = pa.schema(
    [(name, pa.float64() if name in NUMBER_FIELDS else pa.string()) for name in FIELD_NAMES]
)
# Arrow's default pool (mimalloc) keeps what a batch's parse allocated for good; the system
# allocator gives most of it back. One parsing thread: the other core serves the broker's
# fetches, at the same throughput for less memory (README, "Why the tuned settings are
# what they are").
_ARROW_POOL = pa.system_memory_pool()
_ARROW_THREADS = False
# The warehouse row without LOADED_AT, which the drain stamps at commit time.
ROW_SCHEMA = RAW_ARROW_SCHEMA.remove(RAW_ARROW_SCHEMA.get_field_index("LOADED_AT"))
_CONTRACT_KEYS = frozenset(FIELD_NAMES)
_BOM = "\ufeff".encode()


@dataclass
class DecodedBatch:
    rows: pa.Table  # ROW_SCHEMA (+ LOADED_AT, see with_loaded_at)
    rejections: list[Rejection]


def with_loaded_at(rows: pa.Table, loaded_at: datetime) -> pa.Table:
    """``rows`` with the LOADED_AT column (UTC wall-clock) the warehouse row ends with."""
    stamp = pa.scalar(_wall_clock_utc(loaded_at), RAW_ARROW_SCHEMA.field("LOADED_AT").type)
    return rows.append_column("LOADED_AT", pa.repeat(stamp, rows.num_rows))


def _known(mask: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.fill_null(mask, False)  # a null (missing) value is never plainly valid


def _whole(values: pa.ChunkedArray, low: float, high: float) -> pa.ChunkedArray:
    """Finite whole numbers in [low, high)."""
    return _known(
        pc.and_(
            pc.and_(pc.is_finite(values), pc.equal(pc.floor(values), values)),
            pc.and_(pc.greater_equal(values, low), pc.less(values, high)),
        )
    )


def parse_timestamps(texts: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """(instants as UTC timestamps, mask of the texts that are plain ISO-8601 instants)."""
    good = _known(pc.match_substring_regex(texts, ISO_UTC))
    candidates = pc.if_else(good, texts, pa.scalar(None, pa.string()))
    try:
        parsed = pc.cast(candidates, UTC_MICROS)
    except pa.ArrowInvalid:  # a well-formed impossible date (Feb 30): judged one by one
        parsed = pa.chunked_array(
            [pa.array([_instant(t) for t in candidates.to_pylist()], UTC_MICROS)]
        )
    return parsed, pc.and_(good, pc.is_valid(parsed))


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None


def plainly_valid(table: pa.Table) -> np.ndarray:
    """Rows of ``table`` (:data:`ARROW_SCHEMA`) that certainly satisfy the contract.

    A subset of what the contract accepts: a null (missing) field is never plainly valid.
    """
    if not table.num_rows:
        return np.zeros(0, dtype=bool)
    ok = _known(pc.match_substring_regex(table["symbol"], SYMBOL_PATTERN))

    open_, high, low, close = (table[f] for f in PRICE_FIELDS)
    for prices in (open_, high, low, close):
        ok = pc.and_(ok, _known(pc.and_(pc.is_finite(prices), pc.greater(prices, 0))))
    ok = pc.and_(ok, _known(pc.greater_equal(high, low)))
    ok = pc.and_(ok, _known(pc.greater_equal(high, pc.max_element_wise(open_, close))))
    ok = pc.and_(ok, _known(pc.less_equal(low, pc.min_element_wise(open_, close))))

    ok = pc.and_(ok, _whole(table["schema_version"], 1, 2**31))
    volume = table["volume"]
    ok = pc.and_(
        ok,
        _known(
            pc.and_(
                pc.and_(pc.is_finite(volume), pc.greater_equal(volume, 0)),
                pc.less(volume, MAX_VOLUME),
            )
        ),
    )
    # Version 1 promised whole volumes; version 2 allows fractions (contracts.SCHEMA_VERSION).
    ok = pc.and_(
        ok,
        _known(pc.or_(pc.greater(table["schema_version"], 1), pc.equal(pc.floor(volume), volume))),
    )
    ok = pc.and_(ok, _known(pc.is_in(table["interval"], value_set=pa.array(INTERVALS))))
    ok = pc.and_(ok, _known(pc.match_substring_regex(table["source"], SOURCE_PATTERN)))
    latest = pa.scalar(datetime.now(UTC) + MAX_CLOCK_SKEW, UTC_MICROS)
    parsed = {}
    for name in ("ts", "fetched_at"):
        instants, good = parse_timestamps(table[name])
        in_range = pc.and_(
            pc.greater_equal(instants, pa.scalar(EARLIEST_INSTANT, UTC_MICROS)),
            pc.less_equal(instants, latest),
        )
        ok = pc.and_(ok, pc.and_(good, _known(in_range)))
        parsed[name] = instants
    # A bar cannot start after it was fetched.
    ok = pc.and_(ok, _known(pc.less_equal(parsed["ts"], parsed["fetched_at"])))
    return ok.to_numpy(zero_copy_only=False)


def _canonical(payload: dict) -> bool:
    """Exactly the contract's keys, each in its canonical JSON type (what Arrow would parse)."""
    if payload.keys() != _CONTRACT_KEYS:
        return False
    for name in TEXT_FIELDS:
        if type(payload[name]) is not str:
            return False
    for name in NUMBER_FIELDS:
        value = payload[name]
        if type(value) is float:
            continue
        if type(value) is not int or not -(2**53) < value < 2**53:  # bool is not int here
            return False
    return True


def precheck(payloads: list[dict]) -> tuple[pa.Table, np.ndarray]:
    """The pre-check of parsed payloads: canonical types and plainly valid values.

    Returns:
        ``payloads`` as an :data:`ARROW_SCHEMA` table (rows not in canonical types all
        null), and the mask of the rows that passed.
    """
    canonical = np.fromiter((_canonical(p) for p in payloads), dtype=bool, count=len(payloads))
    columns = [
        pa.array([p[name] if ok else None for p, ok in zip(payloads, canonical, strict=True)], kind)
        for name, kind in zip(ARROW_SCHEMA.names, ARROW_SCHEMA.types, strict=True)
    ]
    table = pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)
    return table, canonical & plainly_valid(table)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object as a dict, refusing a name given twice (parsers disagree on which wins)."""
    payload = dict(pairs)
    if len(payload) != len(pairs):
        twice = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise QuoteRejected("duplicate_key", f"the name {twice!r} appears twice in one object")
    return payload


def _lone_surrogate(payload: dict) -> str | None:
    """The first top-level name or text holding a lone UTF-16 surrogate (``"\\ud800"``),
    which JSON escapes allow but no UTF-8 text, and so no warehouse column, can hold."""
    for name, value in payload.items():
        for text in (name, value):
            if isinstance(text, str) and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return name
    return None


def _parse_payload(message: Message) -> tuple[dict | None, Rejection | None]:
    """One value (already known non-empty and within size) parsed as a JSON object."""
    try:
        try:
            payload = json.loads(message.value().decode("utf-8"), object_pairs_hook=_unique_keys)
        except UnicodeDecodeError as exc:
            raise QuoteRejected("undecodable", f"not UTF-8: {exc}") from None
        except json.JSONDecodeError as exc:
            raise QuoteRejected("invalid_json", f"not JSON: {exc}") from None
        except RecursionError:
            raise QuoteRejected("invalid_json", "not JSON: nested too deeply") from None
        if not isinstance(payload, dict):
            raise QuoteRejected("not_an_object", f"JSON {type(payload).__name__}, not an object")
        if (name := _lone_surrogate(payload)) is not None:
            raise QuoteRejected(
                "undecodable", f"field {name!r}: a lone UTF-16 surrogate escape is not text"
            )
    except QuoteRejected as exc:
        return None, Rejection(message, exc.reason, "QuoteRejected", exc.message)
    return payload, None


def _arrow_table(lines: bytes, rows: int) -> pa.Table | None:
    """Parse ``rows`` JSON objects, one a line, in one go (Arrow's C++ reader), or None if
    any is unusual.

    Any value the reader does not take exactly (a type that does not match the schema, an
    unknown key, invalid UTF-8, not an object) makes the whole batch take the per-message
    path, which finds and names the culprit.
    """
    try:
        table = pa_json.read_json(
            io.BytesIO(lines),
            read_options=pa_json.ReadOptions(use_threads=_ARROW_THREADS),
            parse_options=pa_json.ParseOptions(
                explicit_schema=ARROW_SCHEMA, unexpected_field_behavior="error"
            ),
            memory_pool=_ARROW_POOL,
        )
        # Arrow's reader takes bytes that are not UTF-8 inside strings as they are.
        table.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != rows:  # a blank line: Arrow skips it
        return None
    return table


def _one_line_values(candidates: list[Message]) -> pa.Table | None:
    """The batch parsed by Arrow when every value is one line of JSON in canonical types."""
    if not candidates:
        return None
    values = [m.value() for m in candidates]
    joined = b"\n".join(values)
    # One join answers "is every value a single line?" for the whole batch at C speed; a
    # blank value makes Arrow return fewer rows than values.
    if joined.count(b"\n") != len(values) - 1 or b"\r" in joined:
        return None
    if _BOM in joined:  # Arrow skips a leading byte-order mark; Python's json refuses it
        return None
    return _arrow_table(joined, len(values))


def decode_batch(messages: list[Message], max_message_bytes: int) -> DecodedBatch:
    """Split ``messages`` into warehouse rows (:data:`ROW_SCHEMA`) and rejections."""
    rejections: list[Rejection] = []
    candidates: list[Message] = []
    for message in messages:
        value = message.value()
        if value is None:
            rejections.append(Rejection(message, "empty_value", "QuoteRejected", "no value"))
        elif len(value) > max_message_bytes:
            rejections.append(
                Rejection(
                    message,
                    "oversized",
                    "QuoteRejected",
                    f"{len(value)} bytes > max_message_bytes {max_message_bytes}",
                )
            )
        else:
            candidates.append(message)

    table = _one_line_values(candidates)
    payloads: list[dict | None]
    if table is not None:
        fast = plainly_valid(table)
        payloads = [None] * len(candidates)  # parsed again only if the contract must judge
    else:
        parsed: list[dict] = []
        parsed_messages = []
        for message in candidates:
            payload, rejection = _parse_payload(message)
            if rejection is not None:
                rejections.append(rejection)
            else:
                parsed.append(payload)  # type: ignore[arg-type]
                parsed_messages.append(message)
        candidates, payloads = parsed_messages, list(parsed)
        table, fast = precheck(parsed)

    fast_idx = np.flatnonzero(fast)
    good = table if len(fast_idx) == table.num_rows else table.take(fast_idx)
    kept_messages = [candidates[i] for i in fast_idx]
    normalised: list[Quote] = []
    for i in np.flatnonzero(~fast):
        payload = payloads[i]
        if payload is None:
            payload, rejection = _parse_payload(candidates[i])
            if rejection is not None:
                rejections.append(rejection)
                continue
        try:
            quote = validate_quote(payload)  # type: ignore[arg-type]
        except QuoteRejected as exc:
            rejections.append(Rejection(candidates[i], exc.reason, "QuoteRejected", exc.message))
            continue
        # The contract accepted a non-canonical spelling: store its normalised values.
        normalised.append(quote)
        kept_messages.append(candidates[i])
    rows = _rows(good, normalised, kept_messages)
    return _keyed_by_symbol(rows, kept_messages, rejections)


def _keyed_by_symbol(
    rows: pa.Table, messages: list[Message], rejections: list[Rejection]
) -> DecodedBatch:
    """The rows whose message key is their symbol; the others become rejections.

    The contract keys a bar by its symbol: that is what keeps one symbol's bars in order on
    one partition, so a bar keyed otherwise may have overtaken a later one.
    """
    keys = pa.array([m.key() for m in messages], pa.binary())
    keyed = _known(pc.equal(keys, pc.cast(rows["SYMBOL"], pa.binary())))
    if pc.all(keyed).as_py() is not False:
        return DecodedBatch(rows=rows, rejections=rejections)
    symbols = rows["SYMBOL"]
    for i in np.flatnonzero(~keyed.to_numpy(zero_copy_only=False)):
        key = messages[i].key()
        rejections.append(
            Rejection(
                messages[i],
                "key_not_symbol",
                "QuoteRejected",
                f"the message has no key, but its symbol is {symbols[i].as_py()!r}"
                if key is None
                else f"key {key!r} is not the symbol {symbols[i].as_py()!r}",
            )
        )
    return DecodedBatch(rows=rows.filter(keyed), rejections=rejections)


def _naive_utc(instants: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(pc.cast(instants, UTC_MICROS), pa.timestamp("us"))


def _wall_clock_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _rows(good: pa.Table, normalised: list[Quote], messages: list[Message]) -> pa.Table:
    """Warehouse rows: the plainly valid bars, then the ones the contract normalised, each
    with the Kafka coordinates of its message (``messages``, in the same order)."""
    columns = {
        "SYMBOL": good["symbol"],
        "TS": _naive_utc(good["ts"]),
        "BAR_INTERVAL": good["interval"],
        "OPEN": good["open"],
        "HIGH": good["high"],
        "LOW": good["low"],
        "CLOSE": good["close"],
        "VOLUME": pc.cast(good["volume"], pa.float64()),
        "SOURCE": good["source"],
        "FETCHED_AT": _naive_utc(good["fetched_at"]),
        "SCHEMA_VERSION": pc.cast(good["schema_version"], pa.int64()),
    }
    bars = pa.table(columns, schema=pa.schema([ROW_SCHEMA.field(c) for c in columns]))
    if normalised:
        contract_bars = pa.Table.from_pylist(
            [
                {
                    "SYMBOL": q.symbol,
                    "TS": _wall_clock_utc(q.ts),
                    "BAR_INTERVAL": q.interval,
                    "OPEN": q.open,
                    "HIGH": q.high,
                    "LOW": q.low,
                    "CLOSE": q.close,
                    "VOLUME": q.volume,
                    "SOURCE": q.source,
                    "FETCHED_AT": _wall_clock_utc(q.fetched_at),
                    "SCHEMA_VERSION": q.schema_version,
                }
                for q in normalised
            ],
            schema=bars.schema,
        )
        bars = pa.concat_tables([bars, contract_bars])
    timestamps = (m.timestamp()[1] for m in messages)
    coordinates = {
        "KAFKA_TOPIC": pa.array([m.topic() for m in messages], pa.string()),
        "KAFKA_PARTITION": pa.array([m.partition() for m in messages], pa.int64()),
        "KAFKA_OFFSET": pa.array([m.offset() for m in messages], pa.int64()),
        "KAFKA_TIMESTAMP": pa.array(
            [ms if ms > 0 else None for ms in timestamps], pa.timestamp("ms")
        ),
    }
    for name, values in coordinates.items():
        bars = bars.append_column(name, values)
    return bars
