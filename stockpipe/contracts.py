"""The quote message contract (Kafka topic ``stock_prices``, key = symbol, value = JSON),
built from its declaration in :mod:`stockpipe.quote_spec`: the pydantic model that judges one
message, and the column-wise check and serialiser for whole frames of bars.

The producer refuses to publish anything the model refuses, and the drain rejects anything
else to the dead-letter topic.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from stockpipe.quote_spec import (
    BAR_FIELDS,
    DEFAULT_INTERVAL,
    EARLIEST_INSTANT,
    MAX_CLOCK_SKEW,
    MAX_INTEGER,
    MAX_VOLUME,
    SCHEMA_VERSION,
    SOURCE_PATTERN,
    SYMBOL_PATTERN,
    IntervalName,
    ohlcv_holds,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise PydanticCustomError(
            "timestamp_without_timezone", "timestamp has no time zone; the contract wants UTC"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is past year 9999 in UTC
        raise PydanticCustomError(
            "timestamp_out_of_range", "timestamp {value} is out of range in UTC", {"value": value}
        ) from None


def _plausible(value: datetime, field: str) -> datetime:
    """An instant between 1970 and a day ahead of the clock."""
    if value < EARLIEST_INSTANT:
        raise PydanticCustomError(
            f"{field}_before_1970",
            "{field} {value} is before 1970",
            {"field": field, "value": str(value)},
        )
    if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise PydanticCustomError(
            f"{field}_in_future",
            "{field} {value} is in the future",
            {"field": field, "value": str(value)},
        )
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Quote(BaseModel):
    """One OHLCV bar of one symbol. ``ts`` is the bar's start, in UTC."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    symbol: str = Field(pattern=SYMBOL_PATTERN)
    ts: UtcDatetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: float = Field(ge=0, lt=MAX_VOLUME, allow_inf_nan=False)
    interval: IntervalName = DEFAULT_INTERVAL
    source: str = Field(pattern=SOURCE_PATTERN)
    fetched_at: UtcDatetime
    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=MAX_INTEGER)

    @field_serializer("volume")
    def _volume_as_written(self, volume: float) -> int | float:
        return int(volume) if volume.is_integer() else volume

    @model_validator(mode="after")
    def _whole_volume_in_version_1(self) -> Quote:
        if self.schema_version == 1 and not self.volume.is_integer():
            raise PydanticCustomError(
                "volume_not_whole",
                "volume {value} is not a whole number (schema_version 1; version 2 allows it)",
                {"value": self.volume},
            )
        return self

    @field_validator("ts", "fetched_at")
    @classmethod
    def _plausible_instant(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _plausible(value, str(info.field_name))

    @model_validator(mode="after")
    def _fetched_after_its_start(self) -> Quote:
        if self.ts > self.fetched_at:
            raise PydanticCustomError(
                "ts_after_fetched_at",
                "ts {ts} is after fetched_at {fetched_at}: a bar from the future",
                {"ts": str(self.ts), "fetched_at": str(self.fetched_at)},
            )
        return self

    @model_validator(mode="after")
    def _consistent_ohlc(self) -> Quote:
        if self.high < self.low:
            raise PydanticCustomError(
                "high_below_low", "high {high} < low {low}", {"high": self.high, "low": self.low}
            )
        if self.high < max(self.open, self.close) or self.low > min(self.open, self.close):
            raise PydanticCustomError(
                "ohlc_inconsistent",
                "open/close {open}/{close} outside low..high {low}..{high}",
                {"open": self.open, "close": self.close, "low": self.low, "high": self.high},
            )
        return self

    def key(self) -> bytes:
        """The Kafka message key: the symbol, so one symbol's bars stay on one partition."""
        return self.symbol.encode()

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


# Reason codes raised by the contract's own validators; used as they are.
CUSTOM_REASONS = frozenset(
    {
        "volume_not_whole",
        "ts_before_1970",
        "ts_in_future",
        "fetched_at_before_1970",
        "fetched_at_in_future",
        "timestamp_out_of_range",
        "ts_after_fetched_at",
        "high_below_low",
        "ohlc_inconsistent",
        "timestamp_without_timezone",
    }
)


class QuoteRejected(ValueError):
    """A bar that breaks the contract. ``reason`` is a short stable code for counters."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def reason_of(error: ValidationError) -> str:
    """A short, stable reason code for the first problem in a pydantic error."""
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "record"
    kind = first["type"]
    if kind in CUSTOM_REASONS:
        return kind
    if kind == "missing":
        return f"missing_{field}"
    if kind in {"finite_number"}:
        return f"non_finite_{field}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return f"out_of_range_{field}"
    if kind == "string_pattern_mismatch":
        return f"bad_{field}"
    if kind == "extra_forbidden":
        return "unexpected_field"  # not per name: names are the sender's, reasons a fixed set
    return f"{kind}_{field}"


def describe(error: ValidationError) -> str:
    """One line naming every field that failed and why."""
    parts = []
    for e in error.errors():
        field = ".".join(str(p) for p in e["loc"]) or "record"
        parts.append(f"{field}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def validate_quote(record: dict) -> Quote:
    """Check one bar against the contract.

    Raises:
        QuoteRejected: with a reason code and a message that names the field.
    """
    try:
        return Quote.model_validate(record)
    except ValidationError as exc:
        raise QuoteRejected(reason_of(exc), describe(exc)) from None


def describe_reasons(counts: dict[str, int]) -> str:
    """ " (reason: n, ...)" for a summary line, or "" when nothing was rejected."""
    if not counts:
        return ""
    return " (" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")"


# -- many bars at once ----------------------------------------------------------------------
# Ingest checks and serialises whole windows of bars (a backfill is millions); these do what
# validate_quote and Quote.to_json do, column-wise. tests/unit/test_contracts.py holds them
# to the per-record functions.


def conforming(bars: pd.DataFrame, source: str, fetched_at: datetime) -> np.ndarray:
    """The rows of ``bars`` (columns :data:`BAR_FIELDS`) that certainly pass the contract.

    A row left out may still be valid (say, a volume given as a whole float in a text
    column): check those one by one with :func:`validate_quote`.
    """
    import numpy as np
    import pandas as pd

    now = datetime.now(UTC)
    if (
        not re.match(SOURCE_PATTERN, source)
        or not EARLIEST_INSTANT <= fetched_at <= now + MAX_CLOCK_SKEW
    ):
        return np.zeros(len(bars), dtype=bool)
    symbol = bars["symbol"]
    if pd.api.types.infer_dtype(symbol, skipna=False) == "string":
        ok = np.ones(len(bars), dtype=bool)
    else:
        ok = np.array(symbol.map(lambda s: isinstance(s, str)), dtype=bool)
    ok &= np.array(
        symbol.astype("string").str.fullmatch(SYMBOL_PATTERN[1:-1]).fillna(False), dtype=bool
    )
    ts = bars["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        return np.zeros(len(bars), dtype=bool)
    ok &= np.array(ts >= pd.Timestamp(EARLIEST_INSTANT), dtype=bool)
    ok &= np.array(ts <= pd.Timestamp(now + MAX_CLOCK_SKEW), dtype=bool)
    ok &= np.array(ts <= pd.Timestamp(fetched_at), dtype=bool)  # not from the future
    numbers = {}
    for column in ("open", "high", "low", "close", "volume"):
        values = np.array(pd.to_numeric(bars[column], errors="coerce"), dtype=float)
        ok &= np.isfinite(values)
        numbers[column] = values
    with np.errstate(invalid="ignore"):
        ok &= ohlcv_holds(**numbers)
    return ok


def contract_messages(
    bars: pd.DataFrame, interval: str, source: str, fetched_at: datetime
) -> list[str]:
    """The contract's JSON for each row of conforming ``bars``, as :meth:`Quote.to_json`
    writes it (same fields, order and values; the same text except for numbers of 1e16 and
    more, written out in full), built column-wise."""
    import duckdb

    if bars.empty:
        return []
    frame = bars[list(BAR_FIELDS)].assign(
        open=bars["open"].astype("float64"),
        high=bars["high"].astype("float64"),
        low=bars["low"].astype("float64"),
        close=bars["close"].astype("float64"),
        volume=bars["volume"].astype("float64"),
    )
    # pydantic writes whole seconds without a fraction, others with microseconds.
    whole = bool((frame["ts"].dt.microsecond == 0).all() and (frame["ts"].dt.nanosecond == 0).all())
    ts_format = "%Y-%m-%dT%H:%M:%SZ" if whole else "%Y-%m-%dT%H:%M:%S.%fZ"
    fetched = TypeAdapter(datetime).dump_python(fetched_at.astimezone(UTC), mode="json")
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("set TimeZone = 'UTC'")
        connection.register("bars", frame)
        rows = connection.execute(
            "select to_json({symbol: symbol, ts: strftime(ts, $ts_format), open: open, "
            "high: high, low: low, close: close, "
            # Whole volumes as integers, as Quote writes them.
            "volume: if(volume = floor(volume), volume::bigint::json, volume::json), "
            "interval: $interval, "
            "source: $source, fetched_at: $fetched_at, schema_version: $version}) from bars",
            {
                "ts_format": ts_format,
                "interval": interval,
                "source": source,
                "fetched_at": fetched,
                "version": SCHEMA_VERSION,
            },
        ).fetchnumpy()
    finally:
        connection.close()
    return list(next(iter(rows.values())))
