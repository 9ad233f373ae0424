"""The static HTML report: one offline page with the dashboard's charts, locally and on S3."""

from __future__ import annotations

import re

import pytest

from stockpipe.dashboard.data import NoMartsYet
from stockpipe.dashboard.report import write_report
from stockpipe.settings import Settings, load_settings
from tests.dashboard.conftest import SESSION, SYMBOLS


def test_the_report_is_one_offline_page_with_every_symbols_charts(
    history_settings: Settings,
) -> None:
    result = write_report(history_settings)
    assert result.path == history_settings.report_dir / "index.html"
    assert (result.symbols, result.url) == (len(SYMBOLS), None)
    page = result.path.read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</body></html>")
    # Plotly's JavaScript is inlined once; nothing is fetched from the network.
    assert page.count("plotly.js v") == 1
    assert not re.search(r"<script[^>]+src=", page)
    for symbol in SYMBOLS:
        assert f'<section id="{symbol}">' in page
        assert f"{symbol}: daily bars" in page
        assert f"{symbol}: RSI(14), Wilder" in page
    assert page.count("Plotly.newPlot") == 1 + 4 * len(SYMBOLS)  # movers + 4 per symbol
    assert f"session {SESSION.day}" in page
    # The watchlist as people read it: labels, counts whole.
    watchlist = page[page.index("<h2>Watchlist</h2>") :].split("</table>")[0]
    assert "<th>day chg %</th>" in watchlist and "last_close" not in watchlist
    bars = re.findall(r"<td>(\d+(?:\.\d+)?)</td>\s*</tr>", watchlist)  # the last column
    assert bars and all("." not in count for count in bars)


def test_the_report_goes_to_s3_beside_the_data_docs(
    history_settings: Settings,
    s3,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3.create_bucket(Bucket="stockpipe-docs")
    monkeypatch.setenv("STOCKPIPE_VALIDATION__DATA_DOCS_S3_BUCKET", "stockpipe-docs")
    result = write_report(load_settings())
    assert result.url == "s3://stockpipe-docs/data-docs/report/index.html"
    body = s3.get_object(Bucket="stockpipe-docs", Key="data-docs/report/index.html")["Body"]
    assert body.read().decode() == result.path.read_text()


def test_without_a_build_the_report_says_what_to_run_and_leaves_no_page() -> None:
    settings = load_settings()
    with pytest.raises(NoMartsYet, match="stockpipe demo"):
        write_report(settings)
    assert not list(settings.report_dir.glob("index.*"))  # not even a partial page
