"""The quote message contract: what is accepted, and the reason code for what is not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockpipe.contracts import (
    Quote,
    QuoteRejected,
    conforming,
    contract_messages,
    validate_quote,
)
from stockpipe.quote_spec import BAR_FIELDS
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


def test_whole_float_volume_is_written_as_an_integer() -> None:
    assert json.loads(validate_quote(GOOD | {"volume": 1200.0}).to_json())["volume"] == 1200
    assert b'"volume":1200,' in validate_quote(GOOD | {"volume": 1200.0}).to_json()


def test_a_fractional_volume_is_a_version_2_bar() -> None:
    """Fractional-share prints and crypto trades sum to fractional volumes: version 2 keeps
    them; a version-1 message promised whole shares."""
    quote = validate_quote(GOOD | {"volume": 1234.5})
    assert quote.schema_version == 2
    assert json.loads(quote.to_json())["volume"] == 1234.5
    assert validate_quote(GOOD | {"volume": 0.003}).volume == 0.003
    with pytest.raises(QuoteRejected) as caught:
        validate_quote(GOOD | {"volume": 1.5, "schema_version": 1})
    assert caught.value.reason == "volume_not_whole"
    assert validate_quote(GOOD | {"volume": 2.0, "schema_version": 1}).volume == 2


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
        ({"volume": 2.0**53}, "out_of_range_volume"),
        ({"ts": "1969-12-31T23:59:00Z"}, "ts_before_1970"),
        ({"ts": (datetime.now(UTC) + timedelta(days=3)).isoformat()}, "ts_in_future"),
        ({"ts": "2025-11-28T14:30:00"}, "timestamp_without_timezone"),
        (
            {"ts": "2025-11-28T14:32:00Z", "fetched_at": "2025-11-28T14:31:59Z"},
            "ts_after_fetched_at",
        ),
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


# -- many bars at once: held to the per-record contract ------------------------------------
FETCHED = datetime(2025, 11, 28, 21, 5, 7, 123456, tzinfo=UTC)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=1e-6, max_value=1e7),
    st.integers(min_value=-5, max_value=10**6).map(float),
)
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "symbol": st.one_of(
                st.sampled_from(["AAPL", "BRK.B", "^GSPC", "aapl", "", "X" * 16, "EUR=X"]),
                st.text(max_size=4),
            ),
            "ts": st.datetimes(
                min_value=datetime(1969, 12, 31), max_value=datetime(2030, 1, 1)
            ).map(lambda d: d.replace(tzinfo=UTC)),
            "open": NUMBERS,
            "high": NUMBERS,
            "low": NUMBERS,
            "close": NUMBERS,
            "volume": st.one_of(
                st.integers(min_value=-3, max_value=2**62),
                st.floats(min_value=-2, max_value=1e12),
            ),
        }
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(rows=ROWS)
def test_column_wise_checks_pass_only_what_the_contract_accepts(rows: list[dict]) -> None:
    import pandas as pd

    from stockpipe.ingest import check_bars

    bars = pd.DataFrame(rows, columns=list(BAR_FIELDS))
    bars["ts"] = pd.to_datetime(bars["ts"], utc=True)
    passed = conforming(bars, "replay", FETCHED)
    meta = {"interval": "1d", "source": "replay", "fetched_at": FETCHED}
    accepted = []
    for record, fast in zip(bars.to_dict("records"), passed, strict=True):
        try:
            accepted.append(validate_quote(record | meta))
        except QuoteRejected:
            assert not fast, f"passed column-wise, refused one by one: {record}"
    # The ingest check keeps exactly what the contract accepts, with the same values (past
    # 1e16 a number may be written 10000000000000000.0 instead of 1e+16: the same double).
    check = check_bars(bars, "replay", fetched_at=FETCHED, interval="1d")

    def parsed(values) -> list[str]:
        return sorted(json.dumps(json.loads(v), sort_keys=True) for v in values)

    assert parsed(v for _, v in check.messages()) == parsed(q.to_json() for q in accepted)


def test_contract_messages_are_byte_for_byte_the_models_json() -> None:
    import pandas as pd

    bars = pd.DataFrame(
        {
            "symbol": ["AAPL", "MSFT", "BRK.B"],
            "ts": pd.to_datetime(
                ["2025-11-28T14:30:00Z", "2001-02-03T04:05:06Z", "1999-12-31T23:59:00Z"]
            ),
            "open": [0.1 + 0.2, 100.0, 1e-7],
            "high": [1.0, 123456789.123, 2e-7],
            "low": [0.1, 99.5, 1e-7],
            "close": [0.5, 100.25, 1.5e-7],
            "volume": [5, 0.003, 2**52 + 0.5 + 2**51],
        }
    )
    messages = contract_messages(bars, "1m", "yfinance", FETCHED)
    meta = {"interval": "1m", "source": "yfinance", "fetched_at": FETCHED}
    expected = [validate_quote(r | meta).to_json().decode() for r in bars.to_dict("records")]
    assert messages == expected
