"""NYSE trading sessions and minutes from a real exchange calendar (exchange-calendars XNYS).

Holidays, early closes (13:00 New York on half days) and DST come from the calendar; nothing
here assumes a 9:30-16:00 weekday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

from stockpipe.quote_spec import EXCHANGE, EXCHANGE_TZ

# Every session the data may hold, set explicitly: exchange-calendars' default range is
# today minus 20 years to today plus one, which refused a 2004 session. From 1990 (before
# any history a provider serves at minute or daily grain for the watchlist) to the end of
# the fifth year ahead.
FIRST_DAY = date(1990, 1, 1)
YEARS_AHEAD = 5


@lru_cache(maxsize=1)
def nyse() -> xcals.ExchangeCalendar:
    """The NYSE calendar from :data:`FIRST_DAY` to :data:`YEARS_AHEAD` years ahead (loaded
    once per process; about 0.4 s)."""
    return xcals.get_calendar(EXCHANGE, start=FIRST_DAY.isoformat(), end=_last_day().isoformat())


def _last_day() -> date:
    return date(date.today().year + YEARS_AHEAD, 12, 31)


def _label(day: date | str) -> pd.Timestamp:
    """``day`` as the calendar's session label, checked against the calendar's range.

    Raises:
        ValueError: ``day`` is not a date, or lies outside the range the calendar covers.
    """
    label = pd.Timestamp(day)
    if not FIRST_DAY <= label.date() <= _last_day():
        raise ValueError(
            f"{label.date()} is outside the NYSE calendar stockpipe covers "
            f"({FIRST_DAY} to {_last_day()})"
        )
    return label


@dataclass(frozen=True)
class Session:
    """One trading session: its date and its open/close instants in UTC."""

    day: date
    open: datetime
    close: datetime

    @property
    def minutes(self) -> pd.DatetimeIndex:
        """Start of every 1-minute bar of the session, UTC (390 on a full day, 210 on a half).

        From the open to the close: the NYSE has no lunch break. Not the calendar's
        ``session_minutes``, which builds every minute of the calendar's 40 years on first
        use and keeps them for as long as the process lives (README "Memory budget").
        """
        return pd.date_range(self.open, self.close, freq="1min", inclusive="left", unit="ns")

    @property
    def is_early_close(self) -> bool:
        return self.close.astimezone(EXCHANGE_TZ).hour < 16


def _as_utc(moment: datetime | None) -> pd.Timestamp:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC or America/New_York)")
    return pd.Timestamp(moment).tz_convert("UTC")


def session(day: date | str) -> Session:
    """The session on ``day``.

    Raises:
        ValueError: when ``day`` is not a trading day (weekend or NYSE holiday).
    """
    cal = nyse()
    label = _label(day)
    if not cal.is_session(label):
        raise ValueError(f"{label.date()} is not an NYSE trading day")
    return Session(
        day=label.date(),
        open=cal.session_open(label).to_pydatetime(),
        close=cal.session_close(label).to_pydatetime(),
    )


def is_trading_day(day: date | str) -> bool:
    return bool(nyse().is_session(_label(day)))


def is_market_open(moment: datetime | None = None) -> bool:
    """True while the regular session is open at ``moment`` (default: now)."""
    return bool(nyse().is_open_on_minute(_as_utc(moment).floor("min")))


def latest_session(moment: datetime | None = None) -> Session:
    """The session in progress at ``moment``, or the last one that opened before it."""
    cal = nyse()
    now = _as_utc(moment)
    label = (
        cal.minute_to_past_session(now.floor("min"))
        if not cal.is_open_on_minute(now.floor("min"))
        else cal.minute_to_session(now.floor("min"))
    )
    return session(label)


def latest_closed_session(moment: datetime | None = None) -> Session:
    """The last session whose close is at or before ``moment`` (default: now)."""
    current = latest_session(moment)
    if current.close <= _as_utc(moment).to_pydatetime():
        return current
    return previous_session(current.day)


def previous_session(day: date | str) -> Session:
    return session(
        nyse().date_to_session(_label(day), "previous")
        if not is_trading_day(day)
        else nyse().previous_session(_label(day))
    )


def sessions_between(start: date | str, end: date | str) -> list[Session]:
    """Every session from ``start`` to ``end`` inclusive."""
    cal = nyse()
    # The calendar's range is checked on the dates asked; its sessions start on the first
    # trading day in it.
    first = max(_label(start), cal.first_session)
    last = min(_label(end), cal.last_session)
    labels = cal.sessions_in_range(first, last) if first <= last else []
    return [session(label) for label in labels]


def schedule(start: date | str, end: date | str) -> pd.DataFrame:
    """``open`` and ``close`` (UTC) of every session from ``start`` to ``end`` inclusive,
    indexed by session label: one vectorised lookup for many sessions."""
    return nyse().schedule.loc[_label(start) : _label(end), ["open", "close"]]


def session_opens(start: date | str, end: date | str) -> pd.Series:
    """The open (UTC) of every session from ``start`` to ``end`` inclusive, indexed by the
    session's date (a daily bar's ``ts``)."""
    opens = schedule(start, end)["open"]
    return pd.Series(opens.to_numpy(), index=opens.index.date, name="open")


@dataclass(frozen=True)
class GuardDecision:
    """Whether a scheduled run should do its work, and why not when it should not."""

    run: bool
    reason: str


def guard(kind: str, moment: datetime | None = None) -> GuardDecision:
    """Decide whether a market-hours flow scheduled at ``moment`` should run.

    Args:
        kind: "in_session" for flows that only make sense while the market is open (ingest,
            intraday drain/trends/freshness), "after_close" for flows that run after a
            trading day's close (final drain, trends, validation) - they run on the evening
            of a trading day, not on weekends or holidays.
        moment: the run's scheduled time (default: now). Aware datetime.

    Returns:
        run=True with the session it belongs to, or run=False with the reason to show.
    """
    now = _as_utc(moment)
    local = now.tz_convert(EXCHANGE_TZ)
    day = local.date()
    if not is_trading_day(day):
        what = "weekend" if local.weekday() >= 5 else "NYSE holiday"
        return GuardDecision(False, f"market closed on {day} ({what})")
    today = session(day)
    if kind == "in_session":
        if now < pd.Timestamp(today.open):
            return GuardDecision(
                False, f"before the open ({today.open.astimezone(EXCHANGE_TZ):%H:%M} New York)"
            )
        if now >= pd.Timestamp(today.close):
            close = today.close.astimezone(EXCHANGE_TZ)
            early = " early close" if today.is_early_close else ""
            return GuardDecision(False, f"after the{early} close ({close:%H:%M} New York) on {day}")
        return GuardDecision(True, f"in the session of {day}")
    if kind == "after_close":
        if now < pd.Timestamp(today.close):
            return GuardDecision(False, f"the session of {day} has not closed yet")
        return GuardDecision(True, f"after the close of {day}")
    raise ValueError(f"unknown guard kind {kind!r} (in_session | after_close)")
