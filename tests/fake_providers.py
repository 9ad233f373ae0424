"""Finnhub's and Alpha Vantage's HTTP APIs, served locally in their documented formats.

Neither provider can be reached from here, so the tests stand them up at the network
boundary: a real HTTP server the real clients (finnhub-python, requests) talk to, whose
answers have the providers' shapes (field names, string-typed numbers, New York wall-clock
keys, the rate-limit bodies) and whose prices come from the simulated market, so a test can
compare what landed in the warehouse with an independent fetch of the same bars.

``script`` queues answers to give before the normal ones (a 429, a rate-limit note); every
request is recorded (``requests``) so that tests can count calls and check what was asked.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pandas as pd

from stockpipe import market_calendar as mc
from stockpipe.quote_spec import EXCHANGE_TZ
from stockpipe.sources.simulated import SimulatedMarket

FINNHUB_RATE_LIMIT = (
    429,
    {"error": "API limit reached. Please try again later. Remaining Limit: 0"},
)
FINNHUB_NO_ACCESS = (403, {"error": "You don't have access to this resource."})
AV_MINUTE_NOTE = (
    200,
    {
        "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls "
        "per minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ "
        "if you would like to target a higher API call frequency."
    },
)
AV_DAY_INFORMATION = (
    200,
    {
        "Information": "We have detected your API key as KEY and our standard API rate limit "
        "is 25 requests per day. Please subscribe to any of the premium plans at "
        "https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."
    },
)
AV_INVALID_CALL = {
    "Error Message": "Invalid API call. Please retry or visit the documentation "
    "(https://www.alphavantage.co/documentation/) for TIME_SERIES_INTRADAY."
}


@dataclass
class FakeProviders:
    """Args:
    key: the API key both fakes accept (others: 401 / an "Invalid API call").
    known: the symbols they have data for.
    daily_from: the first date of Alpha Vantage's full daily series.
    """

    key: str = "test-key-5f2c9a"
    known: frozenset[str] = frozenset({"AAPL", "MSFT", "NVDA", "JPM"})
    daily_from: str = "2024-06-03"
    seed: int = 42
    requests: list[dict] = field(default_factory=list)
    _script: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.market = SimulatedMarket(seed=self.seed)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeProviders:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, *answers: tuple[int, dict]) -> None:
        """Give these (status, body) answers first, one per request, whatever is asked."""
        self._script.extend(answers)

    # -- the APIs ---------------------------------------------------------------------
    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict]:
        self.requests.append({"path": path, **query})
        if self._script:
            return self._script.popleft()
        if path.rstrip("/").endswith("/stock/candle"):
            return self._finnhub_candles(query)
        if path.rstrip("/").endswith("/query"):
            return self._alphavantage(query)
        return 404, {"error": f"no such path {path}"}

    def _finnhub_candles(self, q: dict[str, str]) -> tuple[int, dict]:
        if q.get("token") != self.key:
            return 401, {"error": "Invalid API key"}
        symbol = q["symbol"].upper()
        start = datetime.fromtimestamp(int(q["from"]), UTC)
        end = datetime.fromtimestamp(int(q["to"]) + 1, UTC)
        if symbol not in self.known:
            return 200, {"s": "no_data"}
        interval = {"1": "1m", "D": "1d"}[q["resolution"]]
        bars = self.market.fetch([symbol], start, end, interval)
        if bars.empty:
            return 200, {"s": "no_data"}
        ts = bars["ts"]
        if interval == "1d":  # Finnhub stamps a daily candle at 00:00 UTC of its date
            ts = ts.dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()
            seconds = ts.astype("int64") // 10**9
        else:
            seconds = ts.astype("int64") // 10**9
        return 200, {
            "c": bars["close"].round(4).tolist(),
            "h": bars["high"].round(4).tolist(),
            "l": bars["low"].round(4).tolist(),
            "o": bars["open"].round(4).tolist(),
            "s": "ok",
            "t": seconds.tolist(),
            "v": bars["volume"].astype(int).tolist(),
        }

    def _alphavantage(self, q: dict[str, str]) -> tuple[int, dict]:
        if q.get("apikey") != self.key:
            return 200, {
                "Error Message": "the parameter apikey is invalid or missing. Please claim "
                "your free API key on (https://www.alphavantage.co/support/#api-key)."
            }
        symbol = q.get("symbol", "").upper()
        if symbol not in self.known:
            return 200, AV_INVALID_CALL
        if q["function"] == "TIME_SERIES_DAILY":
            first = pd.Timestamp(self.daily_from)
            last = mc.latest_closed_session(datetime.now(UTC)).day
            days = mc.sessions_between(first.date(), last)
            bars = self.market.fetch([symbol], days[0].open, days[-1].close, "1d")
            keys = bars["ts"].dt.tz_convert(EXCHANGE_TZ).dt.strftime("%Y-%m-%d")
            series_name, meta_zone = "Time Series (Daily)", "US/Eastern"
        elif q["function"] == "TIME_SERIES_INTRADAY" and q.get("interval") == "1min":
            month = pd.Period(q["month"], freq="M")
            days = mc.sessions_between(month.start_time.date(), month.end_time.date())
            days = [d for d in days if d.close <= datetime.now(UTC)]
            if not days:
                return 200, {"Meta Data": {}, "Time Series (1min)": {}}
            bars = self.market.fetch([symbol], days[0].open, days[-1].close, "1m")
            keys = bars["ts"].dt.tz_convert(EXCHANGE_TZ).dt.strftime("%Y-%m-%d %H:%M:%S")
            series_name, meta_zone = "Time Series (1min)", "US/Eastern"
        else:
            return 200, AV_INVALID_CALL
        series = {
            key: {
                "1. open": f"{row.open:.4f}",
                "2. high": f"{row.high:.4f}",
                "3. low": f"{row.low:.4f}",
                "4. close": f"{row.close:.4f}",
                "5. volume": str(int(row.volume)),
            }
            # Newest first, as Alpha Vantage lists them.
            for key, row in zip(keys[::-1], bars.iloc[::-1].itertuples(), strict=True)
        }
        return 200, {
            "Meta Data": {
                "1. Information": "Intraday (1min) open, high, low, close prices and volume",
                "2. Symbol": symbol,
                "3. Last Refreshed": next(iter(series), ""),
                "4. Output Size": "Full size",
                "6. Time Zone": meta_zone,
            },
            series_name: series,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                status, body = fake.answer(parsed.path, query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # no access log on stderr
                pass

        return Handler


class FakeFinnhubSocket:
    """Finnhub's trades websocket: checks the token, takes subscriptions, and replays a
    session's trades (``{"type": "trade", "data": [{"s", "p", "t", "v", "c"}]}``) for the
    subscribed symbols, a batch a message, in time order, as fast as the client reads.

    Its clock (``clock``, seconds) stands at the first trade while the replay runs (the
    client closes bars on the trades' own time then); once everything was sent it closes
    the connection, and when the client comes back (so it has read everything) the clock
    jumps past ``end_ms``: the session is over. ``drop_after`` closes the connection after
    that many messages once (a dropped websocket); a reconnect resumes the replay. With
    ``speed``, trades are sent when a clock running ``speed`` times as fast as the wall
    clock reaches them (the live-mode benchmark), and ``clock`` is that clock. ``awaited``:
    the subscriptions the first batch waits for (default: every symbol of the trades).

    Args:
        trades: (symbol, price, volume, ts_ms) in time order.
    """

    def __init__(
        self,
        key: str,
        trades: list[tuple[str, float, float, int]],
        end_ms: int,
        batch: int = 5,
        drop_after: int | None = None,
        speed: float | None = None,
        awaited: set[str] | None = None,
    ):
        from websockets.sync.server import serve

        self.key = key
        self.trades = trades
        self.end_ms = end_ms
        self.batch = batch
        self.speed = speed
        self._started: float | None = None
        self.drop_after = drop_after
        self.sent = 0  # trades sent so far (the replay's position)
        self.connections = 0
        self.subscriptions: list[str] = []
        self.unsubscriptions: list[str] = []
        # The subscriptions the first batch waits for (default: every symbol traded).
        self.awaited = awaited if awaited is not None else {symbol for symbol, *_ in trades}
        self._now_ms = trades[0][3] if trades else end_ms
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._authorize)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"

    def clock(self) -> float:
        if self.speed is not None and self._started is not None:
            # Paced: the session's time runs ``speed`` times as fast as the wall clock.
            elapsed = time.monotonic() - self._started
            return (self.trades[0][3] + elapsed * self.speed * 1000) / 1000
        return self._now_ms / 1000

    def start(self) -> FakeFinnhubSocket:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def _authorize(self, connection, request):
        query = parse_qs(urlparse(request.path).query)
        if query.get("token", [""])[-1] != self.key:
            return connection.respond(401, "Invalid API key\n")
        return None

    def _handle(self, ws) -> None:
        self.connections += 1
        subscribed: set[str] = set()
        messages = 0
        if self.sent >= len(self.trades):  # back after the replay: the session is over
            self._now_ms = self.end_ms + 60_000
            ws.send(json.dumps({"type": "ping"}))
            with contextlib.suppress(Exception):  # the client closing ends the replay
                while True:  # hold the connection (taking subscriptions) until it leaves
                    ws.recv(timeout=30)
            return
        expected = set(self.awaited)
        while self.sent < len(self.trades):
            try:
                while True:  # take the subscriptions (the first batch waits for them all)
                    request = json.loads(ws.recv(timeout=0 if expected <= subscribed else 5))
                    if request.get("type") == "subscribe":
                        subscribed.add(request["symbol"])
                        self.subscriptions.append(request["symbol"])
                    elif request.get("type") == "unsubscribe":
                        subscribed.discard(request["symbol"])
                        self.unsubscriptions.append(request["symbol"])
            except TimeoutError:
                pass
            chunk = self.trades[self.sent : self.sent + self.batch]
            if self.speed is not None:  # paced: send when the session's clock gets there
                if self._started is None:
                    self._started = time.monotonic()
                wait = chunk[0][3] / 1000 - self.clock()
                if wait > 0:
                    time.sleep(wait / self.speed)
            data = [
                {"s": s, "p": p, "t": t, "v": v, "c": ["1"]}
                for s, p, v, t in chunk
                if s in subscribed
            ]
            expected = set()  # later batches wait for nothing (a symbol may be unsubscribed)
            if data:
                ws.send(json.dumps({"type": "trade", "data": data}))
            self.sent += len(chunk)
            messages += 1
            if self.drop_after is not None and messages >= self.drop_after:
                self.drop_after = None
                return  # the connection drops mid-session
        # Everything sent: closing the connection (after what was sent) marks the end.


@contextlib.contextmanager
def served_providers(monkeypatch, watchlist: list[str]) -> Iterator[FakeProviders]:
    """The fakes running, and both providers' settings pointing at them (retries wait no
    time), until the block ends."""
    fake = FakeProviders().start()
    try:
        monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_API_KEY", fake.key)
        monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_URL", fake.url + "/api/v1")
        monkeypatch.setenv("STOCKPIPE_SOURCE__ALPHAVANTAGE_API_KEY", fake.key)
        monkeypatch.setenv("STOCKPIPE_SOURCE__ALPHAVANTAGE_URL", fake.url + "/query")
        monkeypatch.setenv("STOCKPIPE_SOURCE__BACKOFF_BASE_SECONDS", "0")
        monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", ",".join(watchlist))
        yield fake
    finally:
        fake.stop()
