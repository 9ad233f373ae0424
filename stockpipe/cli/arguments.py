"""What the command line gives: its settings, sessions, dates and tickers, checked, with a
usage error (exit code 2) that names the option."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from stockpipe.quote_spec import EXCHANGE_TZ, SYMBOL_PATTERN
from stockpipe.settings import Settings, load_settings

if TYPE_CHECKING:
    # Imported where a session is asked for: the exchange calendar brings pandas (~35 MB),
    # which a command such as `stockpipe drain` never needs.
    from stockpipe import market_calendar


class UsageError(Exception):
    """A command line the pipeline cannot act on (a date, a ticker): exit code 2."""


def settings_of(args: argparse.Namespace) -> Settings:
    # Flows read the same environment, so the CLI takes no setting that they could miss.
    return load_settings()


def session_arg(value: str | None) -> market_calendar.Session:
    from stockpipe import market_calendar

    if value is None:
        return market_calendar.latest_closed_session(datetime.now(UTC))
    day = iso_date("--session", value)
    try:
        return market_calendar.session(day)
    except ValueError as exc:
        raise UsageError(f"--session {value}: {date_problem(exc)}") from None


def opened_session_arg(value: str | None) -> market_calendar.Session:
    """``--session``'s session, refusing one that has not opened yet (nothing to act on)."""
    session = session_arg(value)
    if session.open > datetime.now(UTC):
        raise UsageError(
            f"--session {session.day}: the session opens at "
            f"{session.open.astimezone(EXCHANGE_TZ):%H:%M} New York time on {session.day}; "
            "there are no bars before then"
        )
    return session


def date_problem(exc: Exception) -> str:
    """The first line of a date's error (exchange-calendars' errors run to a page)."""
    return str(exc).splitlines()[0]


def ticker(value: str) -> str:
    """A ``--symbols`` argument: a ticker the contract accepts (argparse exits 2 otherwise)."""
    symbol = value.strip().upper()
    if not SYMBOL.match(symbol):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a ticker (letters, digits and . - ^ =, up to 15 characters)"
        )
    return symbol


def iso_date(option: str, value: str) -> date:
    """``option``'s value as a date, or a usage error saying the format expected."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value}: not a date; expected YYYY-MM-DD") from None


def calendar_date(option: str, value: str) -> date:
    """``option``'s date, inside the calendar's range."""
    from stockpipe import market_calendar

    day = iso_date(option, value)
    try:
        market_calendar.schedule(day, day)  # inside the calendar's range
        return day
    except ValueError as exc:
        raise UsageError(f"{option} {value}: {date_problem(exc)}") from None


SYMBOL = re.compile(SYMBOL_PATTERN)
