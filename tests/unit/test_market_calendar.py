"""NYSE sessions from the exchange calendar: holidays, early closes, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from stockpipe import market_calendar as mc


def test_full_session_has_390_bars_from_the_open() -> None:
    session = mc.session("2025-11-26")
    assert len(session.minutes) == 390
    assert session.minutes[0] == session.open
    assert session.close == datetime(2025, 11, 26, 21, 0, tzinfo=UTC)  # 16:00 EST


@pytest.mark.parametrize(
    "day", ["2025-11-26", "2025-11-28", "2025-03-07", "2025-03-10", "2025-11-03", "1999-12-31"]
)
def test_a_sessions_minutes_are_the_exchange_calendars(day: str) -> None:
    # Full and early-close days, either side of both DST changes: what exchange-calendars
    # itself lists for the session.
    minutes, listed = mc.session(day).minutes, mc.nyse().session_minutes(day)
    assert minutes.equals(listed) and minutes.dtype == listed.dtype


def test_thanksgiving_is_not_a_session_and_the_day_after_closes_early() -> None:
    assert not mc.is_trading_day("2025-11-27")
    with pytest.raises(ValueError, match="not an NYSE trading day"):
        mc.session("2025-11-27")
    friday = mc.session("2025-11-28")
    assert friday.is_early_close
    assert friday.close == datetime(2025, 11, 28, 18, 0, tzinfo=UTC)  # 13:00 EST
    assert len(friday.minutes) == 210


def test_the_calendar_covers_1990_to_years_ahead_and_names_its_range_beyond() -> None:
    # More than twenty years back (exchange-calendars' default stops there).
    ipo_day = mc.session("2004-08-19")
    assert ipo_day.open == datetime(2004, 8, 19, 13, 30, tzinfo=UTC)  # 09:30 EDT
    assert [s.day for s in mc.sessions_between("1990-01-01", "1990-01-05")] == [
        date(1990, 1, 2),
        date(1990, 1, 3),
        date(1990, 1, 4),
        date(1990, 1, 5),
    ]
    # Markets closed for Hurricane Sandy, then September 11th's week: in the calendar.
    assert not mc.is_trading_day("2012-10-29") and not mc.is_trading_day("2001-09-11")
    ahead = date.today().year + 4
    assert not mc.is_trading_day(f"{ahead}-12-25")
    assert len(mc.sessions_between(f"{ahead}-01-01", f"{ahead}-12-31")) >= 250
    with pytest.raises(ValueError, match=r"1989-12-29 is outside .* \(1990-01-01 to "):
        mc.session("1989-12-29")
    with pytest.raises(ValueError, match="outside the NYSE calendar"):
        mc.sessions_between("1985-01-01", "1990-01-05")


def test_dst_moves_the_open_in_utc_not_in_new_york() -> None:
    before = mc.session("2025-03-07")  # EST
    after = mc.session("2025-03-10")  # EDT
    assert before.open == datetime(2025, 3, 7, 14, 30, tzinfo=UTC)
    assert after.open == datetime(2025, 3, 10, 13, 30, tzinfo=UTC)


def test_market_open_at_fixed_instants() -> None:
    assert not mc.is_market_open(datetime(2025, 11, 28, 14, 29, tzinfo=UTC))
    assert mc.is_market_open(datetime(2025, 11, 28, 14, 30, tzinfo=UTC))
    assert mc.is_market_open(datetime(2025, 11, 28, 17, 59, tzinfo=UTC))
    assert not mc.is_market_open(datetime(2025, 11, 28, 18, 0, tzinfo=UTC))  # early close
    assert not mc.is_market_open(datetime(2025, 11, 27, 16, 0, tzinfo=UTC))  # holiday
    with pytest.raises(ValueError, match="naive"):
        mc.is_market_open(datetime(2025, 11, 28, 15, 0))


def test_latest_sessions() -> None:
    saturday = datetime(2025, 11, 29, 12, 0, tzinfo=UTC)
    assert mc.latest_session(saturday).day == date(2025, 11, 28)
    assert mc.latest_closed_session(saturday).day == date(2025, 11, 28)
    during = datetime(2025, 11, 26, 15, 0, tzinfo=UTC)
    assert mc.latest_session(during).day == date(2025, 11, 26)
    assert mc.latest_closed_session(during).day == date(2025, 11, 25)
    assert mc.previous_session("2025-11-28").day == date(2025, 11, 26)
    assert mc.previous_session("2025-11-27").day == date(2025, 11, 26)
    days = [s.day for s in mc.sessions_between("2025-11-24", "2025-11-30")]
    assert days == [date(2025, 11, d) for d in (24, 25, 26, 28)]


@pytest.mark.parametrize(
    ("kind", "instant", "runs", "reason"),
    [
        # 2025-11-26 (Wednesday, EST = UTC-5): a full session 09:30-16:00.
        ("in_session", datetime(2025, 11, 26, 14, 29, tzinfo=UTC), False, "before the open"),
        ("in_session", datetime(2025, 11, 26, 14, 30, tzinfo=UTC), True, "in the session"),
        ("in_session", datetime(2025, 11, 26, 20, 59, tzinfo=UTC), True, "in the session"),
        ("in_session", datetime(2025, 11, 26, 21, 0, tzinfo=UTC), False, "after the close"),
        # Thanksgiving, then the half day that closes at 13:00.
        ("in_session", datetime(2025, 11, 27, 15, 0, tzinfo=UTC), False, "NYSE holiday"),
        ("after_close", datetime(2025, 11, 27, 21, 30, tzinfo=UTC), False, "NYSE holiday"),
        ("in_session", datetime(2025, 11, 28, 17, 59, tzinfo=UTC), True, "in the session"),
        ("in_session", datetime(2025, 11, 28, 18, 0, tzinfo=UTC), False, "early close"),
        ("after_close", datetime(2025, 11, 28, 18, 15, tzinfo=UTC), True, "after the close"),
        ("after_close", datetime(2025, 11, 26, 20, 0, tzinfo=UTC), False, "has not closed"),
        ("in_session", datetime(2025, 11, 29, 15, 0, tzinfo=UTC), False, "weekend"),
        # DST: 09:35 New York is 14:35 UTC in winter and 13:35 UTC in summer.
        ("in_session", datetime(2025, 3, 7, 14, 35, tzinfo=UTC), True, "in the session"),
        ("in_session", datetime(2025, 3, 10, 13, 35, tzinfo=UTC), True, "in the session"),
        ("in_session", datetime(2025, 3, 7, 13, 35, tzinfo=UTC), False, "before the open"),
    ],
)
def test_guard_at_fixed_instants(kind: str, instant: datetime, runs: bool, reason: str) -> None:
    decision = mc.guard(kind, instant)
    assert decision.run is runs
    assert reason in decision.reason
