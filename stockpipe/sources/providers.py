"""What the HTTP providers share: their errors in words a user acts on, keeping the key
out of every message (Finnhub, Alpha Vantage), and bars from per-symbol frames.

Both put the API key in the query string, so the text of a network error (which quotes
the URL) holds it: every message that leaves a source goes through :func:`scrubbed`.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

import pandas as pd

from stockpipe.quote_spec import BAR_FIELDS
from stockpipe.sources import Interval, daily_bar_ts, empty_bars

log = logging.getLogger(__name__)
HIDDEN = "***"


class ProviderUnavailable(RuntimeError):
    """The provider failed a request in a way worth retrying (rate limit, network, 5xx)."""


# What a network failure's text (curl's, urllib3's) says, in words a user acts on.
_NETWORK_CAUSES = (
    (
        re.compile(
            r"could not resolve|name ?resolution|name or service not known|nodename nor servname"
            r"|getaddrinfo failed|dnserror",
            re.IGNORECASE,
        ),
        "its host name does not resolve (DNS): is this machine online?",
    ),
    (
        re.compile(r"connection refused|failed to connect|could not connect", re.IGNORECASE),
        "the connection was refused (a proxy or firewall in the way?)",
    ),
    (re.compile(r"network is unreachable|no route to host", re.IGNORECASE), "no network route"),
    (re.compile(r"timed? ?out", re.IGNORECASE), "the connection timed out"),
    (re.compile(r"ssl|certificate", re.IGNORECASE), "the TLS handshake failed"),
)


def network_problem(text: str) -> str | None:
    """What a network error's ``text`` means, in one short phrase; None if it is not one."""
    for pattern, meaning in _NETWORK_CAUSES:
        if pattern.search(text):
            return meaning
    return None


def unavailable(provider: str, exc: Exception, secret: str = "") -> ProviderUnavailable:
    """The error for a request to ``provider`` that failed with ``exc``: one readable line
    for a network failure (the raw text, key scrubbed, is logged at debug level)."""
    raw = scrubbed(f"{type(exc).__name__}: {exc}", secret)
    log.debug("%s request failed: %s", provider, raw)
    problem = network_problem(raw)
    return ProviderUnavailable(f"cannot reach {provider}: {problem}" if problem else raw)


class ProviderRefused(RuntimeError):
    """The provider refused a request for good (bad key, a plan without access)."""


def scrubbed(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced (an API key quoted in a URL, say)."""
    return text.replace(secret, HIDDEN) if secret else text


def bars_frame(
    symbol: str,
    starts: pd.DatetimeIndex,
    open_: object,
    high: object,
    low: object,
    close: object,
    volume: object,
    interval: Interval,
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """One symbol's bars as :data:`BAR_FIELDS`, inside ``[start, end)``.

    Args:
        starts: each minute bar's start (tz-aware), or each daily bar's session date
            (naive midnight; the ``ts`` becomes the session's open).
    """
    if not len(starts):
        return empty_bars()
    ts = pd.DatetimeIndex(daily_bar_ts(starts)) if interval == "1d" else starts.tz_convert("UTC")
    frame = pd.DataFrame(
        {
            "symbol": symbol,
            "ts": ts,
            "open": pd.to_numeric(pd.Series(open_), errors="coerce").to_numpy(),
            "high": pd.to_numeric(pd.Series(high), errors="coerce").to_numpy(),
            "low": pd.to_numeric(pd.Series(low), errors="coerce").to_numpy(),
            "close": pd.to_numeric(pd.Series(close), errors="coerce").to_numpy(),
            "volume": pd.to_numeric(pd.Series(volume), errors="coerce").to_numpy(),
        }
    )
    # A date that is not a session keeps NaT: the contract rejects it, counted, not lost.
    inside = frame["ts"].isna() | ((frame["ts"] >= start) & (frame["ts"] < end))
    return frame[inside].reset_index(drop=True)[list(BAR_FIELDS)]
