"""The running dashboard in a real headless Chromium (Debian's ``chromium``): the page opens,
the charts draw, and a screenshot is kept as a test artifact."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from stockpipe.local_stack.processes import free_port
from stockpipe.settings import Settings
from tests.support import prerequisite

PROJECT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("STOCKPIPE_TEST_ARTIFACTS", PROJECT / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = prerequisite(
    CHROMIUM is None, "needs Debian's chromium (deployments/local/setup.sh installs it)"
)


@pytest.fixture
def dashboard(history_settings: Settings) -> Iterator[str]:
    """``stockpipe dashboard`` serving the warehouse with history, until the test ends."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "dashboard", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("the dashboard did not answer its health check within 120 s")
        yield url
    finally:
        server.terminate()
        server.wait(30)
    # What a service manager's SIGTERM does: the server is gone, not orphaned.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/_stcore/health", timeout=2)


def test_the_dashboard_draws_its_charts_in_chromium(dashboard: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            # The tab says what it is from the first HTML on, before the script has run
            # (a browser compresses what it can: asked for with gzip, as Chromium asks).
            first_html = httpx.get(
                dashboard, headers={"Accept-Encoding": "gzip, br"}, timeout=30
            ).text
            assert "<title>stockpipe</title>" in first_html
            page.goto(dashboard)
            assert page.title() == "stockpipe"
            # Plotly draws each chart into an SVG; wait for the candlesticks and the last chart.
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 10",
                timeout=120_000,
            )
            page.wait_for_selector("text=Watchlist", timeout=60_000)
            # Plotly draws candlesticks as box traces: a year of them in one trace.
            assert page.locator(".boxlayer .trace path").count() >= 200
            titles = page.locator(".gtitle").all_text_contents()
            assert "AAPL: daily bars, SMA 5/20/50" in titles
            assert "AAPL: RSI(14), Wilder" in titles
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 50_000


def test_the_report_draws_offline_in_chromium(history_settings: Settings) -> None:
    from playwright.sync_api import sync_playwright

    from stockpipe.dashboard.report import write_report

    page_file = write_report(history_settings).path
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1600})
            # Offline: any request off the file fails the test.
            requests: list[str] = []
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 13",
                timeout=120_000,
            )
            assert "AAPL: daily bars, SMA 5/20/50" in page.locator(".gtitle").all_text_contents()
            page.screenshot(path=str(ARTIFACTS / "report.png"))
        finally:
            browser.close()
    assert [url for url in requests if not url.startswith("file://")] == []


def test_the_data_docs_are_styled_offline_in_chromium(history_settings: Settings) -> None:
    """GX's pages ask five CDNs for Bootstrap, jQuery, Font Awesome, bootstrap-table and Vega;
    the site serves its own copies, so offline the pages are whole and no request leaves."""
    from playwright.sync_api import sync_playwright

    from stockpipe.validation import run_validation
    from tests.dashboard.conftest import SESSION

    report = run_validation(history_settings, SESSION.day, now=SESSION.close + timedelta(hours=1))
    assert report.docs_offline_problem is None
    pages = [report.docs_dir, *sorted(report.docs_dir.parent.glob("validations/**/*.html"))]
    assert len(pages) == 4
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1200})
            left: list[str] = []  # requests that would leave the machine: refused, recorded

            def offline(route) -> None:
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    left.append(route.request.url)
                    route.abort()

            context.route("**/*", offline)
            page = context.new_page()
            for path in pages:
                page.goto(path.as_uri())
                page.wait_for_load_state("load")
                page.evaluate("document.fonts.ready")
                loaded = page.evaluate(
                    """() => ({
                        jquery: typeof window.jQuery,
                        table: typeof (window.jQuery && window.jQuery.fn.bootstrapTable),
                        tooltip: typeof (window.jQuery && window.jQuery.fn.tooltip),
                        vega: typeof window.vegaEmbed,
                        icons: document.fonts.check('900 16px "Font Awesome 6 Free"'),
                        // Bootstrap's navbar is a flex box; unstyled it is a plain block.
                        navbar: getComputedStyle(document.querySelector('.navbar')).display,
                        logo: [...document.images].every((i) => i.complete && i.naturalWidth > 0),
                    })"""
                )
                assert loaded == {
                    "jquery": "function",
                    "table": "function",
                    "tooltip": "function",
                    "vega": "function",
                    "icons": True,
                    "navbar": "flex",
                    "logo": True,
                }, path
            page.goto(pages[1].as_uri())
            page.screenshot(path=str(ARTIFACTS / "data-docs.png"), full_page=True)
        finally:
            browser.close()
    assert left == []
