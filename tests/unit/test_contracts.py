"""The quote message contract: what is accepted, and the reason code for what is not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from stockpipe.contracts import Quote, QuoteRejected, validate_quote
from tests.support import VALID_QUOTE

GOOD = VALID_QUOTE


def test_valid_quote_round_trips_through_json() -> None:
    quote = validate_quote(GOOD)
    again = Quote.model_validate_json(quote.to_json())
    assert again == quote
    assert quote.key() == b"AAPL"
    payload = json.loads(quote.to_json())
    assert payload["ts"] == "2025-11-28T14:30:00Z"
    assert set(payload) == set(GOOD)


def test_timestamps_are_normalised_to_utc() -> None:
    quote = validate_quote(GOOD | {"ts": "2025-11-28T09:30:00-05:00"})
    assert quote.ts == datetime(2025, 11, 28, 14, 30, tzinfo=UTC)


def test_whole_float_volume_is_accepted_as_int() -> None:
    assert validate_quote(GOOD | {"volume": 1200.0}).volume == 1200


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"symbol": "aapl!"}, "bad_symbol"),
        ({"symbol": "TOOLONGTICKERNAME"}, "bad_symbol"),
        ({"open": 0}, "out_of_range_open"),
        ({"close": -3.2}, "out_of_range_close"),
        ({"high": float("nan")}, "non_finite_high"),
        ({"low": float("inf")}, "non_finite_low"),
        ({"high": 99.0, "low": 99.4, "open": 99.2, "close": 99.3}, "high_below_low"),
        ({"high": 100.5}, "ohlc_inconsistent"),
        ({"volume": -1}, "out_of_range_volume"),
        ({"volume": 1.5}, "volume_not_whole"),
        ({"ts": "1969-12-31T23:59:00Z"}, "ts_before_1970"),
        ({"ts": (datetime.now(UTC) + timedelta(days=3)).isoformat()}, "ts_in_future"),
        ({"ts": "2025-11-28T14:30:00"}, "timestamp_without_timezone"),
        ({"close": "abc"}, "float_parsing_close"),
        ({"extra": 1}, "unexpected_field"),
    ],
)
def test_contract_violations_have_a_reason(change: dict, reason: str) -> None:
    with pytest.raises(QuoteRejected) as caught:
        validate_quote(GOOD | change)
    assert caught.value.reason == reason
    assert caught.value.message  # names the field and the problem


def test_missing_field_is_named() -> None:
    record = dict(GOOD)
    del record["close"]
    with pytest.raises(QuoteRejected) as caught:
        validate_quote(record)
    assert caught.value.reason == "missing_close"
    assert "close" in caught.value.message
