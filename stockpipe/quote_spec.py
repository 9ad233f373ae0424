"""The quote contract, declared once: a bar's fields and their types, the bounds, the
intervals, the symbol pattern, the exchange and its time zone, and the OHLCV rules.

It imports nothing of the pipeline, so every owner of a check can import it. What is built
from it, or held to it by ``tests/unit/test_quote_spec.py``:

- ``stockpipe.contracts``: the pydantic model (one message) and ``conforming`` (a frame);
- ``stockpipe.drain.decoding``: the drain's Arrow pre-check and parse schema;
- ``stockpipe.warehouse.raw_schema``: RAW.STOCK_PRICES' columns for the contract's fields;
- ``sql/``: the ``exchange_time_zone`` variable (passed by every dbt run, its default
  checked) and the ``valid_ohlcv`` macro of the staging model (checked against
  :func:`ohlcv_holds` on generated bars);
- ``expectations/``: each OHLCV rule of the raw suite names the rule it checks (checked);
- ``prefect.yaml``'s schedules and the Grafana dashboards' time zone (checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar, get_args
from zoneinfo import ZoneInfo

# 1: volume a whole number. 2: volume a non-negative decimal (fractional-share prints and
# crypto trades make a minute's summed volume fractional); a whole volume is still written as
# an integer, so a version-2 message of whole shares reads exactly as a version-1 one.
SCHEMA_VERSION = 2

# The exchange whose sessions the pipeline follows (exchange_calendars' code) and its clock:
# schedules, sessions, session dates and daily counters are in this time zone.
EXCHANGE = "XNYS"
EXCHANGE_TIME_ZONE = "America/New_York"
EXCHANGE_TZ = ZoneInfo(EXCHANGE_TIME_ZONE)

# Tickers as the providers write them: BRK-B, BRK.B, ^GSPC, EURUSD=X.
SYMBOL_PATTERN = r"^[A-Z0-9.\-^=]{1,15}$"
# Who fetched the bar ("yfinance", "simulated", "replay", ...): a short plain name.
SOURCE_PATTERN = r"^[A-Za-z0-9_.:\-]{1,32}$"

IntervalName = Literal["1m", "5m", "15m", "1h", "1d"]
INTERVALS: tuple[str, ...] = get_args(IntervalName)
DEFAULT_INTERVAL: IntervalName = "1m"

# A bar stamped before this is not a market bar; one more than MAX_CLOCK_SKEW ahead of the
# clock is a bug upstream, not the future.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(days=1)
# The warehouse's column types bound the numbers: VOLUME is FLOAT (a double: whole numbers
# are exact below 2**53), SCHEMA_VERSION INTEGER.
MAX_VOLUME = 2.0**53
MAX_INTEGER = 2**31 - 1


@dataclass(frozen=True)
class QuoteField:
    """One field of the message.

    Attributes:
        name: the JSON key.
        json_type: "string", "number" (a double), "integer" or "timestamp" (ISO-8601 with a
            zone, UTC once read).
        raw_column: its column in RAW.STOCK_PRICES.
        required: False when the contract has a default for it.
    """

    name: str
    json_type: Literal["string", "number", "integer", "timestamp"]
    raw_column: str
    required: bool = True


FIELDS: tuple[QuoteField, ...] = (
    QuoteField("symbol", "string", "SYMBOL"),
    QuoteField("ts", "timestamp", "TS"),  # the bar's start
    QuoteField("open", "number", "OPEN"),
    QuoteField("high", "number", "HIGH"),
    QuoteField("low", "number", "LOW"),
    QuoteField("close", "number", "CLOSE"),
    QuoteField("volume", "number", "VOLUME"),
    QuoteField("interval", "string", "BAR_INTERVAL", required=False),
    QuoteField("source", "string", "SOURCE"),
    QuoteField("fetched_at", "timestamp", "FETCHED_AT"),
    QuoteField("schema_version", "integer", "SCHEMA_VERSION", required=False),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
PRICE_FIELDS = ("open", "high", "low", "close")
# What a source hands over for each bar; ingest adds the interval, source, fetched_at and
# schema version of the whole fetch.
BAR_FIELDS = ("symbol", "ts", *PRICE_FIELDS, "volume")

# The OHLCV rules a bar keeps, by name (the raw expectation suite names the one each of its
# expectations checks).
OHLCV_RULES = {
    "prices_positive": "open, high, low and close > 0",
    "volume_in_range": f"0 <= volume < {MAX_VOLUME:.0f}",
    "high_at_least_low": "high >= low",
    "body_inside_range": "open and close inside [low, high]",
}

_Values = TypeVar("_Values")


def ohlcv_holds(open: _Values, high: _Values, low: _Values, close: _Values, volume: _Values):
    """Whether the OHLCV rules hold: for numbers, numpy arrays or pandas Series alike (only
    comparisons and ``&``; NaN fails every rule)."""
    return (
        (open > 0)
        & (high > 0)
        & (low > 0)
        & (close > 0)
        & (volume >= 0)
        & (volume < MAX_VOLUME)
        & (high >= low)
        & (high >= open)
        & (high >= close)
        & (low <= open)
        & (low <= close)
    )
