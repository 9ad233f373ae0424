"""1-minute bars from a stream of trades (Finnhub's live mode).

A trade belongs to the minute its own timestamp falls in, not the minute it arrived in.
A minute's bar closes once the minute is over plus a grace for trades that arrive late
(the network, the provider's batching); a trade for a minute already closed is counted and
logged, never folded into a later bar. Open and close are the prices of the minute's
earliest and latest trades by timestamp (trades may arrive out of order within the grace),
high and low their extremes, volume their sum. A minute without trades has no bar, as with
the REST providers.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from stockpipe.quote_spec import BAR_FIELDS
from stockpipe.sources import empty_bars

log = logging.getLogger(__name__)
MINUTE_MS = 60_000


@dataclass(frozen=True)
class Trade:
    """One trade: ``ts_ms`` milliseconds since 1970 (UTC), as Finnhub's ``t``."""

    symbol: str
    price: float
    volume: float
    ts_ms: int


@dataclass
class _Bar:
    minute_ms: int
    open_ts: int
    open: float
    close_ts: int
    close: float
    high: float
    low: float
    volume: float = 0.0
    trades: int = 0

    def add(self, trade: Trade) -> None:
        if trade.ts_ms < self.open_ts:
            self.open_ts, self.open = trade.ts_ms, trade.price
        if trade.ts_ms >= self.close_ts:
            self.close_ts, self.close = trade.ts_ms, trade.price
        self.high = max(self.high, trade.price)
        self.low = min(self.low, trade.price)
        self.volume += trade.volume
        self.trades += 1


@dataclass
class MinuteBars:
    """Open bars per symbol and minute, closed by :meth:`close_due`.

    Args:
        grace_ms: how long after a minute ends its bar waits for late trades.
        published_through: per symbol, the newest minute (ms) an earlier run published
            (flushed on its stop): a trade for it or before is late, so a restart within a
            minute does not publish a second, different bar for it.
    """

    grace_ms: int = 2_000
    published_through: dict[str, int] = field(default_factory=dict)
    late: Counter = field(default_factory=Counter)  # trades too late for their bar, by symbol
    _open: dict[tuple[int, str], _Bar] = field(default_factory=dict)  # (minute, symbol)
    _closed_at: int = -1  # the clock of the last close: minutes ended a grace before are shut
    newest_ms: int = -1  # the newest trade's time seen (a replay's clock, see close_due)

    def add(self, trade: Trade) -> bool:
        """Fold ``trade`` into its minute's bar; False (and counted) when that minute is
        already closed."""
        minute = trade.ts_ms - trade.ts_ms % MINUTE_MS
        self.newest_ms = max(self.newest_ms, trade.ts_ms)
        if minute <= self.published_through.get(trade.symbol, -1):
            why = "its minute's bar was published before a restart"
        elif minute + MINUTE_MS + self.grace_ms <= self._closed_at:
            why = f"its minute closed, grace {self.grace_ms} ms"
        else:
            why = None
        if why is not None:
            self.late[trade.symbol] += 1
            log.warning(
                "late trade for %s at %s (%s): not in a bar",
                trade.symbol,
                pd.Timestamp(trade.ts_ms, unit="ms", tz="UTC"),
                why,
            )
            return False
        bar = self._open.get((minute, trade.symbol))
        if bar is None:
            price = trade.price
            self._open[(minute, trade.symbol)] = _Bar(
                minute, trade.ts_ms, price, trade.ts_ms, price, price, price, trade.volume, 1
            )
        else:
            bar.add(trade)
        return True

    def close_due(self, now_ms: int) -> pd.DataFrame:
        """The bars whose minute ended at least the grace before ``now_ms``, as
        :data:`BAR_FIELDS` rows (ts = the minute's start, UTC) in time then symbol order,
        removed from the open ones; later trades for those minutes are late."""
        self._closed_at = max(self._closed_at, now_ms)
        due = sorted(k for k in self._open if k[0] + MINUTE_MS + self.grace_ms <= now_ms)
        if not due:
            return empty_bars()
        return _frame(due, [self._open.pop(key) for key in due])

    def forming(self) -> pd.DataFrame:
        """Each symbol's newest open bar as it stands (not removed): the forming minute."""
        newest: dict[str, tuple[int, _Bar]] = {}
        for (minute, symbol), bar in self._open.items():
            if symbol not in newest or minute > newest[symbol][0]:
                newest[symbol] = (minute, bar)
        if not newest:
            return empty_bars()
        keys = [(newest[symbol][0], symbol) for symbol in sorted(newest)]
        return _frame(keys, [newest[symbol][1] for _, symbol in keys])

    def close_all(self) -> pd.DataFrame:
        """Every open bar (on shutdown)."""
        if not self._open:
            return empty_bars()
        latest = max(minute for minute, _ in self._open)
        return self.close_due(latest + MINUTE_MS + self.grace_ms)


def _frame(keys: list[tuple[int, str]], bars: list[_Bar]) -> pd.DataFrame:
    """:data:`BAR_FIELDS` rows of ``bars``, keyed (minute in ms, symbol); ts the minute's start."""
    return pd.DataFrame(
        {
            "symbol": [symbol for _, symbol in keys],
            "ts": pd.to_datetime([minute for minute, _ in keys], unit="ms", utc=True),
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        }
    )[list(BAR_FIELDS)]
