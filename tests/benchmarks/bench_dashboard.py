"""Benchmark: the dashboard's first render of one symbol, and the static report.

    .venv/bin/python -m tests.benchmarks.bench_dashboard [--symbols 50] [--years 20]
        [--minute-sessions 252]

Loads symbols x years of daily bars and symbols x minute-sessions x 390 minute bars (50 x
252: about 4.9M) into RAW as the drain does, builds the marts, then prints the server time
of the Streamlit script's first render of one symbol with empty caches (every mart read
done; the script's own time, as the page reports it), the same render with warm caches (the
baseline: Streamlit and Plotly alone), the time to write the static report, and, in
headless Chromium against ``stockpipe dashboard``, the time from navigation to the first
drawn chart. Targets on 2 cores: first render <= 1 s, first chart in the browser <= 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import httpx
import numpy as np
import pandas as pd

from stockpipe import market_calendar as mc
from tests.benchmarks import scratch_dir


def random_bars(symbols: list[str], starts: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Plausible OHLCV rows (a random walk per symbol) at the given bar starts."""
    n, k = len(starts), len(symbols)
    closes = 80 * np.exp(np.cumsum(rng.normal(0, 0.002, (k, n)), axis=1))
    opens = np.concatenate([closes[:, :1], closes[:, :-1]], axis=1)
    highs = np.maximum(opens, closes) * 1.001
    lows = np.minimum(opens, closes) * 0.999
    return pd.DataFrame(
        {
            "symbol": np.repeat(symbols, n),
            "ts": np.tile(starts, k),
            "open": opens.ravel(),
            "high": highs.ravel(),
            "low": lows.ravel(),
            "close": closes.ravel(),
            "volume": rng.integers(1_000, 100_000, k * n),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--minute-sessions", type=int, default=252)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ["STOCKPIPE_HOME"] = str(scratch_dir("stockpipe-bench-dashboard-"))

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from stockpipe.dashboard import APP
    from stockpipe.dashboard.report import write_report
    from stockpipe.drain.loader import load_batch
    from stockpipe.settings import load_settings
    from stockpipe.trends import build_marts
    from stockpipe.warehouse import Warehouse
    from stockpipe.warehouse.setup import setup_warehouse
    from tests.support import raw_rows_from_bars

    settings = load_settings()
    symbols = [f"SYM{i:02d}" for i in range(args.symbols)]
    last = date(2025, 11, 28)
    sessions = mc.sessions_between(date(last.year - args.years, 12, 1), last)
    minute_sessions = sessions[-args.minute_sessions :]
    daily_sessions = sessions[: -args.minute_sessions]
    rng = np.random.default_rng(5)
    started = time.perf_counter()
    loaded = {"1d": 0, "1m": 0}
    offset = 0
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings)
        opens = np.array([s.open for s in daily_sessions], dtype="datetime64[ns]")
        daily = random_bars(symbols, opens, rng)
        daily["ts"] = daily["ts"].dt.tz_localize("UTC")
        batch = raw_rows_from_bars(daily, datetime.now(UTC), interval="1d")
        load_batch(warehouse, batch, {("prices", 0): len(batch)}, None)
        offset = loaded["1d"] = len(batch)
        for i in range(0, len(minute_sessions), 20):
            chunk = minute_sessions[i : i + 20]
            starts = np.concatenate([s.minutes.tz_localize(None).to_numpy() for s in chunk])
            bars = random_bars(symbols, starts, rng)
            bars["ts"] = bars["ts"].dt.tz_localize("UTC")
            batch = raw_rows_from_bars(bars, datetime.now(UTC), first_offset=offset)
            offset += len(batch)
            load_batch(warehouse, batch, {("prices", 0): offset}, None)
            loaded["1m"] += len(batch)
    print(
        f"loaded {loaded['1d']:,} daily and {loaded['1m']:,} minute bars "
        f"({args.symbols} symbols) in {time.perf_counter() - started:.1f}s"
    )
    started = time.perf_counter()
    with Warehouse.connect(settings, "transform") as warehouse:
        build_marts(warehouse, settings, full=True)
    print(f"full build with its snapshot: {time.perf_counter() - started:.1f}s")

    def render() -> float:
        """The script's own time for the page (AppTest's harness adds ~1.5 s per run that a
        running server spends once at start: scanning installed packages for components)."""
        at = AppTest.from_file(str(APP), default_timeout=300)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.get("plotly_chart")) >= 5
        return at.session_state["render_seconds"]

    render()  # imports (Streamlit, Plotly, DuckDB) once, as a running server has them
    cold, warm = [], []
    for _ in range(args.runs):
        st.cache_data.clear()
        st.cache_resource.clear()
        cold.append(render())
        warm.append(render())
    print(
        f"first render of one symbol, empty caches: median {statistics.median(cold):.3f}s "
        f"(min {min(cold):.3f}, max {max(cold):.3f}) [target <= 1 s]"
    )
    print(
        f"same render, warm caches (baseline: Streamlit + Plotly alone): "
        f"median {statistics.median(warm):.3f}s"
    )
    started = time.perf_counter()
    result = write_report(settings)
    print(
        f"static report ({result.symbols} symbols, {result.path.stat().st_size / 1e6:.1f} MB): "
        f"{time.perf_counter() - started:.1f}s"
    )
    browser_first_chart(args.runs)


def browser_first_chart(runs: int) -> None:
    """Navigation to the first drawn chart in headless Chromium, against ``stockpipe
    dashboard`` as a user starts it: the first visit after the server started, then new
    sessions (each in a fresh browser context: nothing cached in the browser)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("browser: skipped (no chromium; deployments/local/setup.sh installs it)")
        return
    from playwright.sync_api import sync_playwright

    from stockpipe.local_stack.processes import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "dashboard", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"stockpipe dashboard exited with {server.returncode}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        seconds = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                for _ in range(runs + 1):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    started = time.perf_counter()
                    page.goto(url)
                    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
                    seconds.append(time.perf_counter() - started)
                    context.close()
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(30)
    print(
        f"browser, navigation to the first chart: first visit after the server started "
        f"{seconds[0]:.2f}s; new sessions median {statistics.median(seconds[1:]):.2f}s "
        f"(min {min(seconds[1:]):.2f}, max {max(seconds[1:]):.2f}) [target <= 1.5 s]"
    )


if __name__ == "__main__":
    main()
