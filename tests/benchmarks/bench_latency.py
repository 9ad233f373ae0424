"""Benchmark: the live path end to end, from a minute's end (plus the grace) to the dashboard.

    .venv/bin/python -m tests.benchmarks.bench_latency [--symbols 50] [--minutes 3]

The processes as they are deployed, on a real broker of its own: ``stockpipe ingest
--follow`` (live ingest) reading a simulated exchange that trades ``--symbols`` symbols in
real time over Finnhub's websocket protocol (this process serves it), and ``stockpipe live``
(the live tier). For ``--minutes`` minutes of wall clock it watches what the dashboard reads
(the live snapshot, polled every 0.1 s) and the alerts topic, and prints, per bar, seconds
from the end of its minute plus the grace to

  (a) committed to the live store (the bar's LOADED_AT),
  (b) readable in the live marts as the dashboard reads them (first seen in the snapshot),
  (c) its alert on the alerts topic (every symbol's first bar crosses a day-move threshold
      of 0.0001 %, so each symbol plants one alert),

as p50 / p99 / max; the age of the dashboard's last price (the forming minute), sampled every
second; and CPU seconds and peak memory (VmHWM) of each process. Targets on 2 cores: (b) p99
<= 2 s, (c) p99 <= 3 s, last-price age p99 <= 5 s.

Not measured yet: a session replayed at 60x (the live path runs on the wall clock: trades
are stamped when made), and crossings of a moving average planted in a replay.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from stockpipe.live.exchange import SimulatedExchange
from stockpipe.live.snapshot import read_forming, read_snapshot
from stockpipe.processes import free_port
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.streaming.broker import LocalBroker

GRACE_SECONDS = 2.0


def proc_figures(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, peak resident MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cpu, peak


def percentiles(name: str, values: list[float]) -> None:
    if not values:
        print(f"{name:<44} no samples")
        return
    p50, p99 = np.percentile(values, [50, 99])
    print(f"{name:<44} p50 {p50:6.2f}  p99 {p99:6.2f}  max {max(values):6.2f}  (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="stockpipe-bench-latency-"))
    symbols = [f"L{i:03d}" for i in range(args.symbols)]
    port, controller = free_port(), free_port()
    env = {
        **os.environ,
        "STOCKPIPE_HOME": str(home),
        "STOCKPIPE_LOCAL_KAFKA__PORT": str(port),
        "STOCKPIPE_LOCAL_KAFKA__CONTROLLER_PORT": str(controller),
        "STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT": "0",
        "STOCKPIPE_SOURCE__WATCHLIST": ",".join(symbols),
        "STOCKPIPE_SOURCE__LIVE_GRACE_SECONDS": str(GRACE_SECONDS),
        "STOCKPIPE_TRENDS__ALERT_DAY_CHANGE_PCT": "0.0001",
    }
    broker = LocalBroker(home / "kafka", port=port, controller_port=controller)
    broker.start()
    os.environ.update(env)
    from stockpipe.ingest import ingest_window
    from stockpipe.market_calendar import previous_session
    from stockpipe.settings import EXCHANGE_TZ, load_settings
    from stockpipe.streaming.topics import ensure_topics
    from tests.support import read_topic

    settings = load_settings()
    ensure_topics(settings.kafka)
    market = SimulatedMarket()
    closed = previous_session(datetime.now(EXCHANGE_TZ).date())
    ingest_window(settings, closed.open, closed.close, symbols, source=market, interval="1d")
    exchange = SimulatedExchange(market).start()
    ingest_env = env | {
        "STOCKPIPE_SOURCE__KIND": "finnhub",
        "STOCKPIPE_SOURCE__FINNHUB_API_KEY": "bench",
        "STOCKPIPE_SOURCE__FINNHUB_WS_URL": exchange.url,
    }
    cli = [sys.executable, "-m", "stockpipe.cli"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = {
        "live tier (stockpipe live)": subprocess.Popen([*cli, "live"], env=env, **quiet),
        "live ingest (ingest --follow)": subprocess.Popen(
            [*cli, "ingest", "--follow"], env=ingest_env, **quiet
        ),
    }
    snapshot = home / "live" / "snapshot"
    seen: dict[tuple[str, pd.Timestamp], float] = {}
    loaded: dict[tuple[str, pd.Timestamp], float] = {}
    ages: list[float] = []
    version = None
    started = time.time()
    next_sample = started + 1
    print(
        f"{args.symbols} symbols, {args.minutes} minutes of real time; the first bars close "
        f"at the next minute plus {GRACE_SECONDS:.0f} s"
    )
    try:
        while time.time() - started < args.minutes * 60 + 65:
            for name, process in processes.items():
                if process.poll() is not None:
                    raise SystemExit(f"{name} exited with {process.returncode}")
            now = time.time()
            current, frames = read_snapshot(snapshot)
            if current is not None and current != version:
                version = current
                for row in frames["minute_bars"].itertuples():
                    key = (row.symbol, pd.Timestamp(row.ts))
                    if key not in seen:
                        seen[key] = now
                        loaded[key] = pd.Timestamp(row.loaded_at).tz_localize("UTC").timestamp()
            if now >= next_sample:
                next_sample += 1
                forming = read_forming(snapshot)
                if not forming.empty:
                    ages.append(now - pd.Timestamp(forming["fetched_at"].max()).timestamp())
            time.sleep(0.1)
        alerts = {}
        for message in read_topic(settings, settings.kafka.alerts_topic):
            alert = json.loads(message.value())
            alerts[alert["symbol"]] = message.timestamp()[1] / 1000
    finally:
        figures = {}
        for name, process in processes.items():
            if process.poll() is None:
                figures[name] = proc_figures(process.pid)
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        exchange.stop()
        broker.stop()

    def due(ts: pd.Timestamp) -> float:
        return ts.tz_localize("UTC").timestamp() + 60 + GRACE_SECONDS

    first_bars = {}
    for symbol, ts in sorted(seen):
        first_bars.setdefault(symbol, ts)
    print(f"bars seen: {len(seen)}; trades made: {exchange.trades_sent:,}")
    percentiles("(a) committed to the live store, s", [loaded[k] - due(k[1]) for k in seen])
    percentiles("(b) readable as the dashboard reads it, s", [seen[k] - due(k[1]) for k in seen])
    percentiles(
        "(c) alert on the alerts topic, s",
        [at - due(first_bars[s]) for s, at in alerts.items() if s in first_bars],
    )
    percentiles("last price age on the dashboard, s", ages)
    for name, (cpu, peak) in figures.items():
        print(f"{name:<44} CPU {cpu:7.1f} s   peak memory {peak:6.0f} MB")
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
