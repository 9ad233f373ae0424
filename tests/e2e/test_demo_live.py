"""``stockpipe demo --live`` as a user runs it: a simulated exchange's trades in real time
reach the dashboard's Live section (seen in headless Chromium) through live ingest, Kafka
and the live tier; Ctrl-C stops everything with a summary and exit code 130."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stockpipe.live.snapshot import read_snapshot
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port
from tests.support import prerequisite

pytestmark = [
    pytest.mark.e2e,
    prerequisite(
        not (shutil.which("chromium") or shutil.which("chromium-browser")),
        "needs Debian's chromium (deployments/local/setup.sh installs it)",
    ),
]
WATCHLIST = ["AAPL", "MSFT", "NVDA"]
# Guards against a hang, not timings: the first bar needs its minute to end (up to ~65 s).
BOUND_SECONDS = 300


def bar_ending(text: str) -> str | None:
    found = re.search(r"the bar ending (\d\d:\d\d) UTC", text)
    return found.group(1) if found else None


def test_demo_live_shows_new_bars_on_the_dashboard_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    home = tmp_path / "home"
    port, controller_port, dashboard_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "STOCKPIPE_HOME": str(home),
        "STOCKPIPE_LOCAL_KAFKA__PORT": str(port),
        "STOCKPIPE_LOCAL_KAFKA__CONTROLLER_PORT": str(controller_port),
        "STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT": "0",
        "STOCKPIPE_SOURCE__WATCHLIST": ",".join(WATCHLIST),
        "STOCKPIPE_DASHBOARD__PORT": str(dashboard_port),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    output = tmp_path / "demo.out"
    with output.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "stockpipe.cli", "demo", "--live"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    broker = LocalBroker(home / "kafka", port=port, controller_port=controller_port)
    try:
        # The live tier's snapshot holds a bar of every symbol: the path is whole.
        deadline = time.monotonic() + BOUND_SECONDS
        while True:
            assert demo.poll() is None, output.read_text()
            _, frames = read_snapshot(home / "live" / "snapshot")
            quotes = frames.get("latest_quote")
            if quotes is not None and sorted(quotes["symbol"]) == WATCHLIST:
                break
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        # Yesterday's daily bars give the change on the day.
        assert quotes["change_on_day_pct"].notna().all()

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
                args=["--no-sandbox", "--disable-gpu"],
            )
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{dashboard_port}")
                caption = page.get_by_text("Newest price: the bar ending")
                caption.wait_for(timeout=BOUND_SECONDS * 1000)
                first = bar_ending(caption.inner_text())
                assert first is not None
                for symbol in WATCHLIST:  # the grid's cells (drawn on a canvas)
                    page.get_by_text(symbol, exact=True).first.wait_for(state="attached")
                page.locator(".gtitle", has_text="AAPL: 1-minute bars").wait_for()
                # The last price moves with the forming minute, every second or so.
                last_price = page.get_by_text("Last price at")
                last_price.wait_for()
                seen = re.search(r"Last price at (\S+) UTC", last_price.inner_text()).group(1)
                page.wait_for_function(
                    """(seen) => {
                        const m = document.body.innerText.match(/Last price at (\\S+) UTC/);
                        return m && m[1] !== seen;
                    }""",
                    arg=seen,
                    timeout=BOUND_SECONDS * 1000,
                )
                # The next minute's bar appears by itself: no reload.
                page.wait_for_function(
                    """(first) => {
                        const text = document.body.innerText;
                        const m = text.match(/the bar ending (\\d\\d:\\d\\d) UTC/);
                        return m && m[1] !== first;
                    }""",
                    arg=first,
                    timeout=BOUND_SECONDS * 1000,
                )
            finally:
                browser.close()

        demo.send_signal(signal.SIGINT)
        assert demo.wait(120) == 130, output.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        broker.stop()
    printed = output.read_text()
    assert "simulated exchange's clock is the wall clock" in printed
    assert re.search(r"live tier: \d+ bars committed to the live store", printed), printed
    assert re.search(r"finnhub live: [\d,]+ trades -> [\d,]+ bars published", printed), printed
    # Nothing is left listening: the dashboard went with the demo.
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", dashboard_port), timeout=2).close()
