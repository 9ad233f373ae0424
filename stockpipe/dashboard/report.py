"""The static HTML report: the dashboard's charts in one self-contained page.

For the VM, where Streamlit does not fit in 1 GiB beside Kafka: the trends flow writes it
beside the Data Docs (and to S3 when the Data Docs go there). Plotly's JavaScript is inlined
once, so the page works offline, from a file or a bucket.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from stockpipe.dashboard import charts, data
from stockpipe.settings import Settings
from stockpipe.validation import latest_outcome

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-bottom: 1.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.ok { color: #1b7e3c; } .failed { color: #b3261e; }
nav a { margin-right: 0.8rem; } section { margin-top: 2rem; }
"""


@dataclass(frozen=True)
class ReportResult:
    path: Path
    symbols: int
    url: str | None = None  # the S3 copy, when configured


def render_report(
    reader: data.MartsReader, settings: Settings, now: datetime | None = None
) -> Iterator[str]:
    """The report's HTML in page order: status, watchlist, movers, then each symbol's charts.

    Piece by piece, for the caller to write as it goes: a page of hundreds of symbols is
    more than a flow run on the VM can hold beside the rest (README "Memory budget").

    Raises:
        NoMartsYet: no trend build has run yet (before the first piece).
    """
    now = now or datetime.now(UTC)
    reader.version()
    symbols = data.symbols(reader)
    plotly_inlined = False

    def embed(figure: go.Figure) -> str:
        nonlocal plotly_inlined
        # Plotly's JavaScript once, inline, with the first chart.
        inline = "inline" if not plotly_inlined else False
        plotly_inlined = True
        return figure.to_html(full_html=False, include_plotlyjs=inline)

    fresh = data.freshness(reader)
    yield (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>stockpipe trends {fresh.latest_session or ''}</title>"
        f"<style>{STYLE}</style></head><body>"
    )
    yield "<h1>stockpipe: trends</h1>"
    yield f'<div class="meta">{_status(fresh, settings, now)}</div>'
    yield "<nav>" + "".join(f'<a href="#{s}">{html.escape(s)}</a>' for s in symbols) + "</nav>"
    yield "<h2>Watchlist</h2>"
    yield _table(data.watchlist(reader))
    movers = data.movers(reader)
    if not movers.empty:
        yield embed(charts.movers_chart(movers))
    for symbol in symbols:
        span = data.session_range(reader, symbol)
        if span is None:
            continue
        first = max(span[0], span[1] - timedelta(days=settings.dashboard.history_days))
        history = data.daily_history(reader, symbol, first, span[1])
        yield f'<section id="{html.escape(symbol)}"><h2>{html.escape(symbol)}</h2>'
        yield embed(charts.price_chart(history, symbol))
        yield embed(charts.rsi_chart(history, symbol))
        yield embed(charts.volatility_chart(history, symbol))
        latest = history.iloc[-1]
        if not pd.isna(latest["high_52w"]):
            yield embed(charts.range_52w_chart(latest, symbol))
        yield "</section>"
    yield "</body></html>"


def write_report(settings: Settings, directory: Path | None = None) -> ReportResult:
    """Write the report to ``directory`` (default: beside the Data Docs) and, when
    ``STOCKPIPE_VALIDATION__DATA_DOCS_S3_BUCKET`` is set, copy it to S3 beside them.

    The page appears whole or not at all: it is written beside and renamed when complete.
    """
    directory = directory or settings.report_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    partial = path.with_suffix(".partial")
    reader = data.open_reader(settings)
    try:
        with partial.open("w", encoding="utf-8") as page:
            for piece in render_report(reader, settings):
                page.write(piece)
                page.write("\n")
        symbols = len(data.symbols(reader))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        reader.close()
    partial.replace(path)
    return ReportResult(path, symbols, _publish_to_s3(settings, directory))


def _publish_to_s3(settings: Settings, directory: Path) -> str | None:
    bucket = settings.validation.data_docs_s3_bucket
    if not bucket:
        return None
    from stockpipe.object_store import s3_bucket

    prefix = f"{settings.validation.data_docs_s3_prefix}/report"
    s3_bucket(settings, bucket).upload_from_folder(str(directory), prefix)
    return f"s3://{bucket}/{prefix}/index.html"


def _status(fresh: data.Freshness, settings: Settings, now: datetime) -> str:
    text = f"Written {now:%Y-%m-%d %H:%M} UTC."
    if fresh.latest_bar is not None:
        text += (
            f" Latest bar {fresh.latest_bar:%Y-%m-%d %H:%M} UTC, session {fresh.latest_session}."
        )
    outcome = latest_outcome(settings.validation_record)
    if outcome is not None:
        css = "ok" if outcome["success"] else "failed"
        verdict = (
            f"{outcome['passed']}/{outcome['checked']} expectations passed"
            if outcome["success"]
            else "failed: " + ", ".join(outcome["failed"])
        )
        text += (
            f' <span class="{css}">Validation of {outcome["session"]}: '
            f"{html.escape(verdict)}</span>"
        )
    return text


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>No quotes yet.</p>"
    shown = frame.drop(columns=["ts"], errors="ignore").rename(columns=data.WATCHLIST_LABELS)
    for label in data.WHOLE_NUMBER_LABELS:
        if label in shown:
            shown[label] = shown[label].round().astype("Int64")
    return shown.to_html(index=False, float_format=lambda v: f"{v:,.2f}", na_rep="-", border=0)
