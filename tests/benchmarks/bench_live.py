"""Benchmark: Finnhub live mode, from a minute's end (plus the grace) to its bars in Kafka.

    .venv/bin/python -m tests.benchmarks.bench_live [--symbols 50] [--minutes 390] [--speed 60]

Replays a session of trades for ``--symbols`` symbols (a random walk each, ~10 trades a
symbol a minute, sent in batches as Finnhub does) over a local websocket in Finnhub's
format, ``--speed`` times as fast as real time, into ``follow_trades`` (what ``stockpipe
ingest --follow`` runs) with a real broker. Prints the p50 / p99 / max delay of each bar
from the end of its minute's grace to its acknowledgement by the broker, in wall-clock
seconds (the session clock's delay divided by the speed), and how many bars and trades.
Target: p99 <= 2 s after the grace. Starts its own broker on free ports.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import UTC, datetime

import numpy as np

from tests.benchmarks import scratch_dir

T0 = 1_764_167_400_000  # 2025-11-26 14:30:00 UTC
KEY = "bench-key"


def session_trades(symbols: list[str], minutes: int, per_minute: int = 10) -> list[tuple]:
    """(symbol, price, volume, ts_ms) in time order."""
    rng = random.Random(11)
    prices = {s: 20.0 + 5 * i for i, s in enumerate(symbols)}
    trades = []
    for symbol in symbols:
        for _ in range(minutes * per_minute):
            at = rng.randrange(T0, T0 + minutes * 60_000)
            trades.append((symbol, 0.0, float(rng.randrange(1, 900)), at))
    trades.sort(key=lambda t: t[3])
    walked = []
    for symbol, _, volume, ts in trades:
        prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0, 0.0005)), 2)
        walked.append((symbol, prices[symbol], volume, ts))
    return walked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--minutes", type=int, default=390)
    parser.add_argument("--speed", type=float, default=60.0)
    args = parser.parse_args()
    home = scratch_dir("stockpipe-bench-live-")
    symbols = [f"L{i:03d}" for i in range(args.symbols)]
    os.environ.update(
        {
            "STOCKPIPE_HOME": str(home),
            "STOCKPIPE_SOURCE__KIND": "finnhub",
            "STOCKPIPE_SOURCE__FINNHUB_API_KEY": KEY,
            "STOCKPIPE_SOURCE__WATCHLIST": ",".join(symbols),
        }
    )
    from stockpipe.live.ingest import follow_trades
    from stockpipe.local_stack.broker import LocalBroker
    from stockpipe.local_stack.processes import free_port
    from stockpipe.settings import load_settings
    from stockpipe.streaming.topics import ensure_topics
    from tests.fake_providers import FakeFinnhubSocket

    port = free_port()
    os.environ["STOCKPIPE_LOCAL_KAFKA__PORT"] = str(port)
    os.environ["STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"] = f"localhost:{port}"
    broker = LocalBroker(home / "kafka", port=port, controller_port=free_port(), heap="512m")
    broker.start(progress=False)
    trades = session_trades(symbols, args.minutes)
    end_ms = T0 + args.minutes * 60_000
    socket = FakeFinnhubSocket(KEY, trades, end_ms=end_ms, batch=20, speed=args.speed).start()
    os.environ["STOCKPIPE_SOURCE__FINNHUB_WS_URL"] = socket.url
    try:
        settings = load_settings()
        ensure_topics(settings.kafka)
        print(
            f"replaying {len(trades):,} trades of {args.symbols} symbols over {args.minutes} "
            f"minutes at {args.speed:g}x ({args.minutes * 60 / args.speed:.0f} s) ...",
            flush=True,
        )
        started = time.perf_counter()
        report = follow_trades(
            settings,
            datetime.fromtimestamp(end_ms / 1000, UTC),
            clock=socket.clock,
            sleep=lambda _: None,
        )
        wall = time.perf_counter() - started
    finally:
        socket.stop()
        broker.stop()
    delays = np.array(report.bar_delays) / args.speed
    print(report.summary())
    print(
        f"bar delay after the grace (wall clock): p50 {np.percentile(delays, 50):.3f} s, "
        f"p99 {np.percentile(delays, 99):.3f} s, max {delays.max():.3f} s over "
        f"{len(delays):,} bars [target p99 <= 2 s]; run {wall:.0f} s"
    )


if __name__ == "__main__":
    main()
