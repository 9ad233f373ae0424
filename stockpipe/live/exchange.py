"""A simulated exchange behind Finnhub's trades websocket, for the live path offline.

It speaks what :mod:`stockpipe.live.ingest` reads from ``wss://ws.finnhub.io``: the client
connects with ``?token=...`` (any token), sends ``{"type": "subscribe", "symbol": ...}``
and receives ``{"type": "trade", "data": [{"s", "p", "t", "v", "c"}, ...]}`` messages,
a few a second, and ``{"type": "ping"}`` when idle. Its clock is the wall clock unless
given another (a replay at 60x): trades are stamped when made, on any day and hour (the
simulated market never closes).

Each symbol starts at its last close in the simulated market (:class:`~stockpipe.sources.
simulated.SimulatedMarket`, the same profile: price level, volatility, volume) and follows
a random walk of that volatility, trade by trade. Like Finnhub's feed, some prints are
fractional shares.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
from pydantic import SecretStr

from stockpipe import market_calendar
from stockpipe.settings import Settings
from stockpipe.sources.simulated import (
    MINUTES_PER_SESSION,
    TRADING_DAYS_PER_YEAR,
    SimulatedMarket,
)

log = logging.getLogger(__name__)

SECONDS_PER_YEAR_OF_TRADING = TRADING_DAYS_PER_YEAR * MINUTES_PER_SESSION * 60
# One print in this many is a fractional share, as Finnhub reports them.
FRACTIONAL_EVERY = 7


class SimulatedExchange:
    """Trades in real time for any listed symbol a client subscribes to.

    Args:
        market: whose profiles and last closes the prices start from.
        trades_per_second: per subscribed symbol, on average.
        seed: the random walk's seed (the same seed, the same path for the same timing).
        port: where to listen (0: a free port).
        clock: seconds since 1970 of the market's time (a replay runs faster than the wall
            clock; trades per second are of this clock's seconds).
    """

    def __init__(
        self,
        market: SimulatedMarket | None = None,
        trades_per_second: float = 4.0,
        seed: int = 7,
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        from websockets.sync.server import serve

        self.market = market or SimulatedMarket()
        self.clock = clock
        self.trades_per_second = trades_per_second
        self._rng = np.random.default_rng(seed)
        self._prices: dict[str, float] = {}
        self._lock = threading.Lock()
        self.trades_sent = 0
        self.subscribed = threading.Event()  # a client subscribed to a symbol
        self._server = serve(self._handle, "127.0.0.1", port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="simulated-exchange", daemon=True
        )

    @property
    def url(self) -> str:
        """The websocket's address, for ``STOCKPIPE_SOURCE__FINNHUB_WS_URL``."""
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"

    def environment(self) -> dict[str, str]:
        """The settings (as environment variables) that point live ingest at this exchange."""
        return {
            "STOCKPIPE_SOURCE__KIND": "finnhub",
            "STOCKPIPE_SOURCE__FINNHUB_API_KEY": "simulated",
            "STOCKPIPE_SOURCE__FINNHUB_WS_URL": self.url,
        }

    def trading_settings(self, settings: Settings) -> Settings:
        """``settings`` with live ingest pointed at this exchange (as :meth:`environment`)."""
        return settings.model_copy(
            update={
                "source": settings.source.model_copy(
                    update={
                        "kind": "finnhub",
                        "finnhub_ws_url": self.url,
                        "finnhub_api_key": SecretStr("simulated"),
                    }
                )
            }
        )

    def start(self) -> SimulatedExchange:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)

    def __enter__(self) -> SimulatedExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def trades(self, symbols: Sequence[str], since: float, until: float) -> list[dict]:
        """The trades of ``symbols`` made between the clock's ``since`` and ``until``
        (stamped in that time, in order), in Finnhub's shape; a symbol the market does not
        list trades nothing."""
        seconds = max(0.0, until - since)
        data = []
        with self._lock:
            for symbol in symbols:
                price = self._price(symbol)
                if price is None:
                    continue
                profile = self.market.profile(symbol)
                count = self._rng.poisson(self.trades_per_second * seconds)
                sigma = profile.annual_volatility / math.sqrt(
                    SECONDS_PER_YEAR_OF_TRADING * self.trades_per_second
                )
                mean_size = profile.volume_per_minute / 60 / self.trades_per_second
                stamps = np.sort(self._rng.uniform(since, until, count))
                for stamp in stamps:
                    price *= math.exp(self._rng.normal(0.0, sigma))
                    size = max(1.0, float(np.round(self._rng.exponential(mean_size))))
                    self.trades_sent += 1
                    if self.trades_sent % FRACTIONAL_EVERY == 0:
                        size = round(size + float(self._rng.uniform(0.01, 0.99)), 4)
                    data.append(
                        {
                            "s": symbol,
                            "p": round(price, 4),
                            "t": int(stamp * 1000),
                            "v": size,
                            "c": ["1"],
                        }
                    )
                self._prices[symbol] = price
        return data

    def _price(self, symbol: str) -> float | None:
        if symbol in self._prices:
            return self._prices[symbol]
        if self.market.listed is not None and symbol not in self.market.listed:
            return None
        last = market_calendar.latest_closed_session(datetime.fromtimestamp(self.clock(), UTC))
        bars = self.market.daily_bars([symbol], last.day, last.day)
        self._prices[symbol] = float(bars["close"].iloc[-1])
        return self._prices[symbol]

    def _handle(self, ws) -> None:
        subscribed: list[str] = []
        tick = 0.25
        idle_since = time.monotonic()
        made_until = self.clock()
        with contextlib.suppress(Exception):  # the client leaving ends the connection
            while True:
                try:
                    while True:
                        request = json.loads(ws.recv(timeout=tick))
                        symbol = str(request.get("symbol", "")).upper()
                        if request.get("type") == "subscribe" and symbol not in subscribed:
                            subscribed.append(symbol)
                            self.subscribed.set()
                        elif request.get("type") == "unsubscribe" and symbol in subscribed:
                            subscribed.remove(symbol)
                except TimeoutError:
                    pass
                now = self.clock()
                data = self.trades(subscribed, made_until, now)
                made_until = now
                if data:
                    ws.send(json.dumps({"type": "trade", "data": data}))
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 10:
                    ws.send(json.dumps({"type": "ping"}))
                    idle_since = time.monotonic()
