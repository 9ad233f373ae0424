"""Benchmark: the live path end to end, from a minute's end (plus the grace) to the dashboard.

    .venv/bin/python -m tests.benchmarks.bench_latency [--symbols 50] [--minutes 3]
    .venv/bin/python -m tests.benchmarks.bench_latency --speed 60 [--minutes 390]

The processes as they are deployed, on a real broker of its own: live ingest reading a
simulated exchange that trades ``--symbols`` symbols over Finnhub's websocket protocol (this
process serves it), and ``stockpipe live`` (the live tier). At ``--speed 1`` (the default)
the exchange trades now, on the wall clock, for ``--minutes`` minutes, and the ingest is
``stockpipe ingest --follow``. At ``--speed 60`` the exchange replays the latest closed
session (its 390 minutes by default) sixty times faster than the wall clock, and the ingest
is the same ``follow_trades`` in a process of its own with that clock (the CLI's follow runs
on the wall clock); the grace is then 2 s of wall clock too.

It watches what the dashboard reads (the live snapshot, polled every 0.1 s) and the alerts
topic, and prints, per bar, wall-clock seconds from the end of its minute plus the grace to

  (a) committed to the live store (the bar's LOADED_AT),
  (b) readable in the live marts as the dashboard reads them (first seen in the snapshot),
  (c) its alert on the alerts topic: each symbol's first bar crosses a day-move threshold of
      0.0001 % (one planted alert per symbol), and every crossing of a close over its ma20
      (computed here from the bars seen, with pandas: an independent definition) must be
      alerted once (missing or unexpected ones are counted);

as p50 / p99 / max; the age of the dashboard's last price (the forming minute), sampled every
second; CPU seconds and peak memory (VmHWM) of each process, and the live tier's resident
memory over the run (growth shows there). Targets on 2 cores: (b) p99 <= 2 s, (c) p99 <= 3 s,
last-price age p99 <= 5 s, no memory growth over a session.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from stockpipe.live.exchange import SimulatedExchange
from stockpipe.live.snapshot import read_forming, read_snapshot
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port
from stockpipe.sources.simulated import SimulatedMarket
from tests.benchmarks import scratch_dir
from tests.support import memory_mb

GRACE_SECONDS = 2.0  # of wall clock; in a replay, as many of the market's as the setting allows
REPLAY_LEAD_SECONDS = 15.0  # from starting the ingest to the replay's open
MEMORY_SAMPLE_SECONDS = 10.0


class ReplayClock:
    """The market's time: ``market_start`` until ``wall_start``, then running ``speed``
    times as fast as the wall clock (no trade is made, no bar closes, before it starts)."""

    def __init__(self, wall_start: float, market_start: float, speed: float):
        self.wall_start, self.market_start, self.speed = wall_start, market_start, speed

    def __call__(self) -> float:
        return self.market_start + max(0.0, time.time() - self.wall_start) * self.speed

    def wall_at(self, market_seconds: float) -> float:
        return self.wall_start + (market_seconds - self.market_start) / self.speed

    def arguments(self) -> list[str]:
        return [str(self.wall_start), str(self.market_start), str(self.speed)]


def proc_figures(pid: int) -> tuple[float, float, float]:
    """(CPU seconds so far, resident MB now, peak resident MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu, *memory_mb(pid)


def percentiles(name: str, values: list[float]) -> None:
    if not values:
        print(f"{name:<44} no samples")
        return
    p50, p99 = np.percentile(values, [50, 99])
    print(f"{name:<44} p50 {p50:6.2f}  p99 {p99:6.2f}  max {max(values):6.2f}  (n={len(values)})")


def ma20_crossings(bars: pd.DataFrame) -> set[tuple[str, str]]:
    """(symbol, alert rule) of every crossing of a close over the mean of its last 20
    closes, from the bars alone (the live tier's rule, written independently of its SQL)."""
    crossings = set()
    for symbol, group in bars.sort_values("ts").groupby("symbol"):
        close = group["close"].astype(float).reset_index(drop=True)
        ma20 = close.rolling(20).mean()
        before, ma_before = close.shift(1), ma20.shift(1)
        up = (before <= ma_before) & (close > ma20)
        down = (before >= ma_before) & (close < ma20)
        for i in np.flatnonzero((up | down).to_numpy()):
            minute = pd.Timestamp(group["ts"].iloc[i])
            crossings.add((symbol, f"price_ma20_cross_{'up' if up[i] else 'down'}@{minute:%H:%M}"))
    return crossings


def replay_ingest(wall_start: float, market_start: float, speed: float, until: float) -> None:
    """The ingest of a replay (``--replay-ingest``): ``follow_trades`` on the replay's
    clock, in a process of its own, until the replayed minutes are over."""
    from stockpipe.live.ingest import follow_trades
    from stockpipe.settings import load_settings

    clock = ReplayClock(wall_start, market_start, speed)
    try:
        report = follow_trades(load_settings(), datetime.fromtimestamp(until, UTC), clock=clock)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    print(report.summary())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--speed", type=float, default=1.0, help="1 (now) or a replay's speed")
    parser.add_argument(
        "--minutes", type=float, help="market minutes (default: 3 now, the whole session replayed)"
    )
    parser.add_argument("--replay-ingest", nargs=4, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_ingest:
        replay_ingest(*args.replay_ingest)
        return
    replay = args.speed != 1
    home = scratch_dir("stockpipe-bench-latency-")
    symbols = [f"L{i:03d}" for i in range(args.symbols)]
    port, controller = free_port(), free_port()
    grace_market = min(60.0, GRACE_SECONDS * args.speed)
    env = {
        **os.environ,
        "STOCKPIPE_HOME": str(home),
        "STOCKPIPE_LOCAL_KAFKA__PORT": str(port),
        "STOCKPIPE_LOCAL_KAFKA__CONTROLLER_PORT": str(controller),
        "STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT": "0",
        "STOCKPIPE_SOURCE__WATCHLIST": ",".join(symbols),
        "STOCKPIPE_SOURCE__LIVE_GRACE_SECONDS": str(grace_market),
        "STOCKPIPE_TRENDS__ALERT_DAY_CHANGE_PCT": "0.0001",
    }
    broker = LocalBroker(home / "kafka", port=port, controller_port=controller)
    broker.start()
    os.environ.update(env)
    from stockpipe.ingest import ingest_window
    from stockpipe.market_calendar import latest_closed_session, previous_session
    from stockpipe.quote_spec import EXCHANGE_TZ
    from stockpipe.settings import load_settings
    from stockpipe.streaming.topics import ensure_topics
    from tests.support import read_topic

    settings = load_settings()
    ensure_topics(settings.kafka)
    market = SimulatedMarket()
    cli = [sys.executable, "-m", "stockpipe.cli"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    tier = subprocess.Popen([*cli, "live"], env=env, **quiet)
    processes = {"live tier (stockpipe live)": tier}
    snapshot = home / "live" / "snapshot"
    exchange = None
    try:
        # The tier is ready (store set up, views made) when its first snapshot is written;
        # the market starts after that, so no bar waits for the tier's start.
        while read_snapshot(snapshot)[0] is None:
            if tier.poll() is not None:
                raise SystemExit(f"the live tier exited with {tier.returncode} at start")
            time.sleep(0.2)
        if replay:
            session = latest_closed_session()
            minutes = args.minutes or (session.close - session.open).total_seconds() / 60
            # The market opens when the ingest has surely subscribed (checked below).
            clock = ReplayClock(
                time.time() + REPLAY_LEAD_SECONDS, session.open.timestamp(), args.speed
            )
            until = session.open.timestamp() + minutes * 60
            closed = previous_session(session.day)
        else:
            minutes = args.minutes or 3.0
            clock = ReplayClock(time.time(), time.time(), 1.0)
            until = time.time() + minutes * 60
            closed = previous_session(datetime.now(EXCHANGE_TZ).date())
        ingest_window(settings, closed.open, closed.close, symbols, source=market, interval="1d")
        # A replay trades 15 times a market minute per symbol: at 60x, 15 a second (now: 4).
        exchange = SimulatedExchange(
            market, trades_per_second=0.25 if replay else 4.0, clock=clock
        ).start()
        this = [sys.executable, "-m", "tests.benchmarks.bench_latency"]
        ingest = (
            [*this, "--replay-ingest", *clock.arguments(), str(until)]
            if replay
            else [*cli, "ingest", "--follow"]
        )
        processes["live ingest"] = subprocess.Popen(
            ingest, env=env | exchange.environment(), **quiet
        )
        if replay and not exchange.subscribed.wait(clock.wall_start - time.time()):
            raise SystemExit(
                f"the ingest did not subscribe within {REPLAY_LEAD_SECONDS:.0f} s: the replay's "
                "first minutes would be missing (raise REPLAY_LEAD_SECONDS on a busy machine)"
            )
        seen: dict[tuple[str, pd.Timestamp], float] = {}
        loaded: dict[tuple[str, pd.Timestamp], float] = {}
        bars = pd.DataFrame()
        ages: list[float] = []
        figures: dict[str, tuple[float, float, float]] = {}
        memory: list[tuple[float, float]] = []  # (minutes of wall clock, the tier's VmRSS)
        version = None
        started = time.time()
        next_sample, next_memory = started + 1, started
        last_minute = pd.Timestamp(until - 60, unit="s").floor("min")
        wall_end = clock.wall_at(until + grace_market) + 60  # every bar due, with time
        print(
            f"{args.symbols} symbols, {minutes:.0f} market minutes at {args.speed:g}x "
            + (f"(the session of {session.day} replayed)" if replay else "(now: wall clock)")
            + f"; about {(wall_end - started) / 60:.1f} minutes"
        )
        while time.time() < wall_end:
            now = time.time()
            current, frames = read_snapshot(snapshot)
            if current is not None and current != version:
                version = current
                bars = frames["minute_bars"]
                for row in bars.itertuples():
                    key = (row.symbol, pd.Timestamp(row.ts))
                    if key not in seen:
                        seen[key] = now
                        loaded[key] = pd.Timestamp(row.loaded_at).tz_localize("UTC").timestamp()
            if now >= next_sample:
                next_sample += 1
                forming = read_forming(snapshot)
                if not forming.empty and clock() < until:
                    ages.append(now - pd.Timestamp(forming["fetched_at"].max()).timestamp())
                for name, process in processes.items():
                    if process.poll() is None:
                        figures[name] = proc_figures(process.pid)
                    elif process.returncode != 0 or not replay or name.startswith("live tier"):
                        raise SystemExit(f"{name} exited with {process.returncode}")
            if now >= next_memory:
                next_memory += MEMORY_SAMPLE_SECONDS
                memory.append(((now - started) / 60, proc_figures(tier.pid)[1]))
            if replay and sum(1 for _, ts in seen if ts == last_minute) == args.symbols:
                break  # the last minute of every symbol is on the dashboard
            time.sleep(0.1)
        alerts: dict[tuple[str, str], list[float]] = {}
        for message in read_topic(settings, settings.kafka.alerts_topic):
            alert = json.loads(message.value())
            at = message.timestamp()[1] / 1000
            alerts.setdefault((alert["symbol"], alert["rule"]), []).append(at)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        if exchange is not None:
            exchange.stop()
        broker.stop()

    def due(ts: pd.Timestamp) -> float:
        return clock.wall_at(ts.tz_localize("UTC").timestamp() + 60 + grace_market)

    first_bars: dict[str, pd.Timestamp] = {}
    for symbol, ts in sorted(seen):
        first_bars.setdefault(symbol, ts)
    expected = ma20_crossings(bars) if len(bars) else set()
    crossing_alerts = {key: at for key, at in alerts.items() if key[1].startswith("price_ma20")}
    bar_of = {
        (symbol, rule): pd.Timestamp(f"{first_bars[symbol].date()} {rule.split('@')[1]}")
        for symbol, rule in crossing_alerts
        if symbol in first_bars
    }
    print(f"bars seen: {len(seen)}; trades made: {exchange.trades_sent:,}")
    percentiles("(a) committed to the live store, s", [loaded[k] - due(k[1]) for k in seen])
    percentiles("(b) readable as the dashboard reads it, s", [seen[k] - due(k[1]) for k in seen])
    percentiles(
        "(c) day-move alert on the alerts topic, s",
        [
            ats[0] - due(first_bars[symbol])
            for (symbol, rule), ats in alerts.items()
            if rule == "day_move" and symbol in first_bars
        ],
    )
    percentiles(
        "(c) ma20-crossing alert on the alerts topic, s",
        [ats[0] - due(bar_of[key]) for key, ats in crossing_alerts.items() if key in expected],
    )
    sent_twice = sum(1 for ats in alerts.values() if len(ats) > 1)
    print(
        f"ma20 crossings in the bars: {len(expected)}; alerted: "
        f"{len(expected & crossing_alerts.keys())}; missing: "
        f"{len(expected - crossing_alerts.keys())}; unexpected: "
        f"{len(crossing_alerts.keys() - expected)}; alerts sent more than once: {sent_twice}"
    )
    percentiles("last price age on the dashboard, s", ages)
    for name, (cpu, _, peak) in figures.items():
        print(f"{name:<44} CPU {cpu:7.1f} s   peak memory {peak:6.0f} MB")
    if memory:
        picks = [memory[round(i * (len(memory) - 1) / 4)] for i in range(5)]
        print(
            "live tier resident memory over the run: "
            + ", ".join(f"{rss:.0f} MB at {at:.1f} min" for at, rss in picks)
        )
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
