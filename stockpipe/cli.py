"""``stockpipe``: run the pipeline and its local infrastructure from a terminal.

    stockpipe demo                      the whole pipeline on one simulated session
    stockpipe demo --live               the live path: a simulated exchange in real time
    stockpipe kafka install|up|down|status   the local KRaft broker
    stockpipe monitoring up|down|status      local Prometheus, Pushgateway, node exporter
    stockpipe ingest [--session DATE]   fetch and publish bars (--follow: Finnhub's live trades)
    stockpipe backfill --from DATE [--to DATE] [--interval 1d|1m]   publish history
    stockpipe drain [--follow]          Kafka -> warehouse, exactly once
    stockpipe warehouse setup [--plan]  create or update the warehouse objects (once, as admin)
    stockpipe warehouse reload          reload the raw zone's Parquet files into RAW
    stockpipe trends                    the latest figures per symbol
    stockpipe live                      the live tier: live marts and alerts as bars arrive
    stockpipe dashboard [--port N]      the trends in the browser (Streamlit)
    stockpipe validate [--session DATE] Great Expectations checks; exit 1 on failure
    stockpipe config                    the effective settings (secrets masked)

Exit codes:
    0    success
    1    the pipeline or the data failed (a broker or warehouse that cannot be reached, a
         failed validation, a failed trend build)
    2    bad usage or configuration (an invalid setting, date, ticker or replay file)
    130  stopped by Ctrl-C (SIGINT), 143 stopped by SIGTERM; a drain first prints what it
         committed
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from stockpipe import market_calendar
from stockpipe.quote_spec import EXCHANGE_TZ, SYMBOL_PATTERN
from stockpipe.runtime import Terminated, raise_on_sigterm
from stockpipe.settings import (
    ConfigError,
    Settings,
    load_settings,
    unknown_variables,
)
from stockpipe.sources.replay import ReplayFileError

# Plain lines are never broken mid-phrase in a pipe or a log (soft wrap); tables keep their width.
console = Console(soft_wrap=True)
# Below this many columns a table would cut its cells: print one record a line instead.
WIDE_TABLES = 120
err = Console(stderr=True, soft_wrap=True)
# demo --live trades until stopped: its ingest's deadline is this far ahead (seconds).
LIVE_DEMO_YEAR = 365 * 24 * 3600
# How often `stockpipe live` prints a progress line.
LIVE_PROGRESS_SECONDS = 5.0
# The demo's daily history before its session: enough for SMA 50, RSI and the 52-week range.
DEMO_HISTORY_DAYS = 365
SYMBOL = re.compile(SYMBOL_PATTERN)


class UsageError(Exception):
    """A command line the pipeline cannot act on (a date, a ticker): exit code 2."""


# -- helpers ------------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Settings:
    # Flows read the same environment, so the CLI takes no setting that they could miss.
    return load_settings()


def _session(value: str | None) -> market_calendar.Session:
    if value is None:
        return market_calendar.latest_closed_session(datetime.now(UTC))
    day = _iso_date("--session", value)
    try:
        return market_calendar.session(day)
    except ValueError as exc:
        raise UsageError(f"--session {value}: {_date_problem(exc)}") from None


def _opened_session(value: str | None) -> market_calendar.Session:
    """``--session``'s session, refusing one that has not opened yet (nothing to act on)."""
    session = _session(value)
    if session.open > datetime.now(UTC):
        raise UsageError(
            f"--session {session.day}: the session opens at "
            f"{session.open.astimezone(EXCHANGE_TZ):%H:%M} New York time on {session.day}; "
            "there are no bars before then"
        )
    return session


def _date_problem(exc: Exception) -> str:
    """The first line of a date's error (exchange-calendars' errors run to a page)."""
    return str(exc).splitlines()[0]


def _ticker(value: str) -> str:
    """A ``--symbols`` argument: a ticker the contract accepts (argparse exits 2 otherwise)."""
    symbol = value.strip().upper()
    if not SYMBOL.match(symbol):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a ticker (letters, digits and . - ^ =, up to 15 characters)"
        )
    return symbol


def _ensure_local_kafka(settings: Settings) -> None:
    from stockpipe.local_stack.broker import broker_from_settings
    from stockpipe.streaming.topics import ensure_topics

    if settings.profile == "local":
        status = broker_from_settings(settings).start()
        console.print(f"kafka: running on {status.bootstrap_servers} (cluster {status.cluster_id})")
    created = ensure_topics(settings.kafka)
    console.print("topics: " + ", ".join(f"{k} ({v})" for k, v in created.items()))


def latest_table(frame: pd.DataFrame) -> Table:
    """The summary table: one row per symbol from MARTS.LATEST_QUOTE."""
    sessions = sorted({str(d) for d in frame["session_date"]}) if len(frame) else []
    table = Table(title=f"Latest per symbol (session {', '.join(sessions) or '-'})")
    for column, justify in (
        ("symbol", "left"),
        ("bars", "right"),
        ("last close", "right"),
        ("day chg %", "right"),
        ("vs open %", "right"),
        ("MA5 (1m)", "right"),
        ("MA20 (1m)", "right"),
        ("VWAP", "right"),
    ):
        table.add_column(column, justify=justify)

    def fmt(value: float | None, digits: int = 2) -> str:
        return "-" if value is None or value != value else f"{value:,.{digits}f}"

    for row in frame.itertuples():
        table.add_row(
            row.symbol,
            str(row.bar_count),
            fmt(row.last_close),
            fmt(row.change_on_day_pct),
            fmt(row.change_vs_open_pct),
            fmt(row.ma5),
            fmt(row.ma20),
            fmt(row.session_vwap),
        )
    if not len(frame):
        table.caption = "no bars in the warehouse yet: 'stockpipe ingest', then 'stockpipe drain'"
    elif frame["change_on_day_pct"].isna().all():
        table.caption = (
            "day chg % needs the previous session's close: publish it with 'stockpipe ingest "
            "--session DATE' or 'stockpipe backfill --from DATE', drain, and build again"
        )
    return table


def trends_table(frame: pd.DataFrame, width: int = 80) -> Table:
    """Daily indicators per symbol from MARTS.DAILY_TRENDS' latest session.

    When every symbol's latest session is the same one it goes in the title; below
    :data:`WIDE_TABLES` columns (``width``: a pipe, a log) each column is as narrow as its
    cells and the headers wrap, so nothing is cut.
    """
    sessions = sorted({str(d) for d in frame["session_date"]}) if len(frame) else []
    one_session = len(sessions) == 1
    one_year = len({s[:4] for s in sessions}) == 1
    if one_session:
        title = f"Daily trends (session {sessions[0]})"
    elif one_year:  # the year in the title, month-day in the rows
        title = f"Daily trends (latest session per symbol, {sessions[0][:4]})"
    else:
        title = "Daily trends (latest session per symbol)"
    table = Table(title=title)
    columns = ["symbol", "session", "close", "day chg %", "SMA 20", "SMA 50", "RSI 14"]
    columns += ["vol 30 %", "vs 52w high %"]
    if one_session:
        columns.remove("session")
    elif one_year:
        columns[1] = "day"

    def fmt(value: float | None, spec: str = ".2f") -> str:
        return "-" if value is None or value != value else format(value, spec)

    rows = [
        [
            row.symbol,
            *([] if one_session else [str(row.session_date)[5 if one_year else 0 :]]),
            fmt(row.close),
            fmt(row.change_pct, "+.2f"),
            fmt(row.sma_20),
            fmt(row.sma_50),
            fmt(row.rsi_14, ".1f"),
            fmt(None if row.volatility_30 is None else row.volatility_30 * 100, ".1f"),
            fmt(row.pct_from_52w_high, "+.1f"),
        ]
        for row in frame.itertuples()
    ]
    for index, column in enumerate(columns):
        # Narrow: each column as wide as its widest cell (or header word), the headers
        # wrap, no figure or date is cut.
        narrowest = max([len(r[index]) for r in rows] + [len(w) for w in column.split()])
        table.add_column(
            column,
            justify="left" if column in ("symbol", "session", "day") else "right",
            width=narrowest if width < WIDE_TABLES else None,
        )
    for cells in rows:
        table.add_row(*cells)
    if len(frame) and frame["sma_50"].isna().all():
        table.caption = (
            "SMA 50 needs 50 sessions, RSI 15: load history with 'stockpipe backfill --from DATE'"
        )
    return table


# -- commands ------------------------------------------------------------------------------
def cmd_kafka(args: argparse.Namespace) -> int:
    from stockpipe.local_stack.broker import broker_from_settings
    from stockpipe.streaming.topics import ensure_topics

    settings = _settings(args)
    broker = broker_from_settings(settings)
    if args.action == "install":
        libs = broker.install()
        console.print(f"kafka {settings.local_kafka.version} installed: {libs}")
    elif args.action == "up":
        status = broker.start()
        console.print(
            f"kafka {settings.local_kafka.version} running: pid {status.pid}, "
            f"{status.bootstrap_servers}, cluster {status.cluster_id}"
        )
        for topic, outcome in ensure_topics(settings.kafka).items():
            console.print(f"  topic {topic}: {outcome}")
        console.print(f"  log: {status.log_file}")
    elif args.action == "down":
        console.print("kafka stopped" if broker.stop() else "kafka was not running")
    else:
        status = broker.status()
        state = "running" if status.running else "stopped"
        console.print(
            f"kafka {state}: pid {status.pid or '-'}, {status.bootstrap_servers}, "
            f"cluster {status.cluster_id or '(not formatted)'}, log {status.log_file}"
        )
        return 0 if status.running else 1
    return 0


def cmd_monitoring(args: argparse.Namespace) -> int:
    from stockpipe.local_stack.monitoring import LocalMonitoring

    monitoring = LocalMonitoring(_settings(args))
    if args.action == "up":
        for name, url in monitoring.up().items():
            console.print(f"{name}: {url}")
        console.print(
            "push flow metrics here with "
            f"STOCKPIPE_METRICS__PUSHGATEWAY_URL=127.0.0.1:"
            f"{monitoring.settings.metrics.pushgateway_port}"
        )
    elif args.action == "down":
        stopped = monitoring.down()
        console.print("stopped: " + (", ".join(stopped) or "nothing was running"))
    else:
        status = monitoring.status()
        for name, running in status.items():
            console.print(f"{name}: {'running' if running else 'stopped'}")
        return 0 if all(status.values()) else 1
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from stockpipe.ingest import ingest_window

    settings = _settings(args)
    if args.follow:
        return _follow(settings)
    session = _opened_session(args.session)
    now = datetime.now(UTC)
    end = session.close
    if end > now:  # in progress: the bars so far, not a session that has not happened
        end = now.replace(second=0, microsecond=0)
        err.print(f"note: session {session.day} is in progress; its bars until {end:%H:%M} UTC")
    report = ingest_window(settings, session.open, end, symbols=args.symbols)
    console.print(report.summary())
    if report.fetched and report.rejected and not (report.published or report.unchanged):
        err.print("error: the contract rejected every bar; nothing was published")
        return 1
    return 0


def _follow(settings: Settings) -> int:
    """``ingest --follow``: Finnhub's live trades as minute bars until the session closes."""
    from stockpipe.live.ingest import LiveReport, follow_trades, session_close_after

    if settings.source.kind != "finnhub":
        raise UsageError(
            "--follow takes live trades from Finnhub's websocket: set "
            "STOCKPIPE_SOURCE__KIND=finnhub (and STOCKPIPE_SOURCE__FINNHUB_API_KEY)"
        )
    until = session_close_after()
    console.print(
        f"following the trades of {len(settings.source.watchlist)} symbols until "
        f"{until:%Y-%m-%d %H:%M} UTC (the session's close); Ctrl-C stops",
    )
    last: list[LiveReport] = []

    def on_publish(report: LiveReport) -> None:
        last[:] = [report]
        console.print(f"  {datetime.now(UTC):%H:%M:%S} {report.summary()}")

    try:
        report = follow_trades(settings, until, on_publish=on_publish)
    except KeyboardInterrupt:
        if last:
            console.print(last[0].summary())
        raise
    console.print(report.summary())
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    """``stockpipe live``: the live tier until Ctrl-C or SIGTERM (130 / 143, with a summary)."""
    return _run_live(_settings(args))


def _run_live(settings: Settings) -> int:
    from stockpipe.live.store import LiveReport, LiveStore

    printed = [0.0]

    def on_refresh(report: LiveReport) -> None:
        # A line every few seconds: a commit a second would flood a terminal or a log.
        if time.monotonic() - printed[0] < LIVE_PROGRESS_SECONDS or report.last is None:
            return
        printed[0] = time.monotonic()
        last = report.last
        newest = (
            f"newest bar {last.newest_bar:%H:%M} UTC, "
            f"{(datetime.now(UTC) - last.newest_bar.replace(tzinfo=UTC)).total_seconds() - 60:.0f}"
            " s after its minute"
            if last.newest_bar
            else "no bars yet"
        )
        console.print(
            f"  {datetime.now(UTC):%H:%M:%S} {last.rows['latest_quote']} symbols, "
            f"{last.rows['minute_bars']} bars today, {newest}; marts read in "
            f"{last.seconds * 1000:.0f} ms; {report.alerts} alerts sent"
        )

    live = LiveStore(settings, on_refresh=on_refresh)
    console.print(
        f"live tier: following {settings.kafka.prices_topic} into {live.store.warehouse_dir} "
        f"(group {live.store.kafka.consumer_group}); the dashboard reads {live.snapshot}; "
        "Ctrl-C stops"
    )
    report = live.run()
    console.print(report.summary())
    if report.drain is not None and report.drain.interrupted is not None:
        raise report.drain.interrupted
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Publish history with a progress bar; the drain and trends take it from there."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from stockpipe.backfill import BackfillPlan, BackfillReport, BackfillWindow, backfill

    settings = _settings(args)
    first = _date("--from", args.first)
    closed = market_calendar.latest_closed_session().day
    last = _date("--to", args.last) if args.last else closed
    if last > closed:
        raise UsageError(
            f"--to {last}: history ends with the latest closed session, {closed}; "
            "'stockpipe ingest' takes the session in progress"
        )
    if first > last:
        raise UsageError(f"--from {first} is after --to {last}")
    with Progress(
        TextColumn("backfill {task.fields[interval]} {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sessions · published {task.fields[published]:,}"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as progress:
        bar = progress.add_task(f"{first}..{last}", total=None, interval=args.interval, published=0)

        def on_window(plan: BackfillPlan, window: BackfillWindow, report: BackfillReport) -> None:
            progress.update(
                bar,
                total=plan.sessions,
                advance=window.sessions,
                description=f"to {window.last}",
                published=report.published,
            )
            if not err.is_terminal:  # a log file: a line per window instead of a bar
                err.print(
                    f"backfill {args.interval}: window {report.windows}/{len(plan.windows)} "
                    f"({window.first}..{window.last}) published {report.published:,} so far",
                )

        try:
            report = backfill(
                settings, first, last, args.interval, symbols=args.symbols, on_window=on_window
            )
        except KeyboardInterrupt:
            done = progress.tasks[0].fields["published"]
            err.print(
                f"backfill stopped: {done:,} bars published and acknowledged before it; "
                "running the same command again publishes the rest",
            )
            raise
    for note in report.notes:
        err.print(f"note: {note}")
    console.print(report.summary())
    if report.published:
        console.print(
            "next: 'stockpipe drain' loads it, then 'stockpipe trends' rebuilds the marts"
        )
    return 0


def _iso_date(option: str, value: str) -> date:
    """``option``'s value as a date, or a usage error saying the format expected."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value}: not a date; expected YYYY-MM-DD") from None


def _date(option: str, value: str) -> date:
    """``option``'s date, inside the calendar's range."""
    day = _iso_date(option, value)
    try:
        market_calendar.schedule(day, day)  # inside the calendar's range
        return day
    except ValueError as exc:
        raise UsageError(f"{option} {value}: {_date_problem(exc)}") from None


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the Streamlit dashboard until Ctrl-C or SIGTERM (exit 130 / 143, as every
    command): Streamlit's server runs as a child that gets the same signal and is waited
    for, so nothing is left listening."""
    from stockpipe.dashboard import SERVER

    settings = _settings(args)
    port = args.port or settings.dashboard.port
    address = settings.dashboard.address
    console.print(f"dashboard: http://{address}:{port} (Ctrl-C to stop)")
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(SERVER),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        # No usage statistics to Streamlit's servers: nothing here needs the internet.
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]
    server = subprocess.Popen(command)
    try:
        returncode = server.wait()
    except KeyboardInterrupt:  # Ctrl-C (the server got it too) or SIGTERM (Terminated)
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        raise
    if returncode != 0:
        raise RuntimeError(f"the dashboard's server (Streamlit) exited with code {returncode}")
    return 0


def cmd_drain(args: argparse.Namespace) -> int:
    """Drain with a progress bar on a terminal (a line per batch otherwise); after Ctrl-C or
    SIGTERM, print what was committed and exit 130 / 143."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from stockpipe import metrics
    from stockpipe.drain import DrainReport, run_drain
    from stockpipe.runtime import Terminated

    settings = _settings(args)
    if args.follow and settings.metrics.port:
        metrics.serve(settings.metrics.port)
    started = time.monotonic()
    with Progress(
        TextColumn("drain"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("messages · lag {task.fields[lag]:,} · {task.fields[rate]:,.0f} msg/s · ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=args.follow or not err.is_terminal,
    ) as progress:
        bar = progress.add_task("drain", total=None, lag=0, rate=0.0)

        def on_batch(report: DrainReport) -> None:
            total = max(report.backlog, report.messages)
            rate = report.messages / max(time.monotonic() - started, 1e-3)
            progress.update(
                bar, completed=report.messages, total=total, lag=total - report.messages, rate=rate
            )
            if args.follow or not err.is_terminal:
                console.print(
                    f"  batch {report.batches}: {report.messages:,} of {total:,} messages, "
                    f"{report.inserted:,} new bars, {report.rejected_total} dead-lettered",
                )

        with metrics.pushed_at_end("drain-to-warehouse", settings.metrics.pushgateway_url):
            report = run_drain(
                settings,
                until_empty=not args.follow,
                max_records=args.max_records,
                reset_offsets=args.reset_offsets,
                on_batch=on_batch,
                on_progress=lambda text: err.print(f"  {text}"),
            )
    console.print(report.summary())
    for (topic, partition), offset in sorted(report.next_offsets.items()):
        console.print(f"  {topic}[{partition}] next offset {offset}")
    if report.interrupted is not None:
        return 143 if isinstance(report.interrupted, Terminated) else 130
    return 0


def cmd_warehouse(args: argparse.Namespace) -> int:
    from stockpipe.warehouse import Warehouse
    from stockpipe.warehouse.setup import (
        plan as setup_plan,
    )
    from stockpipe.warehouse.setup import (
        read_sql_dir,
        setup_variables,
        setup_warehouse,
    )

    settings = _settings(args)
    if args.action == "reload":
        return _reload(settings, args)
    if args.action == "remove":
        return _remove_symbols(settings, args)
    with Warehouse.connect(settings, "setup") as warehouse:
        console.print(f"warehouse {warehouse.location}")
        steps = setup_plan(warehouse, read_sql_dir(setup_variables(settings)))
        for step in steps:
            if args.plan or not (step.runs or args.force):
                console.print(f"  {step.name}: {step.action}")
        if args.plan:
            return 0
        setup_warehouse(
            warehouse,
            settings,
            force=args.force,
            on_applied=lambda name: console.print(f"  {name}: applied"),
        )
    console.print("set-up done; the runtime roles can start")
    return 0


def _remove_symbols(settings: Settings, args: argparse.Namespace) -> int:
    """``warehouse remove --symbols ...``: delete symbols' bars from RAW (logged in the load
    log, so the next ``stockpipe trends`` takes them out of the marts)."""
    from stockpipe.drain.loader import delete_bars
    from stockpipe.warehouse import Warehouse

    since, until = (
        datetime.combine(_iso_date(flag, value), datetime.min.time()) if value else None
        for flag, value in (("--since", args.since), ("--until", args.until))
    )
    with Warehouse.connect(settings, "load") as warehouse:
        for symbol in args.symbols:
            removed = delete_bars(warehouse, symbol, since, until)
            console.print(f"{symbol}: {removed} bars removed from RAW.STOCK_PRICES")
    console.print(
        "run 'stockpipe trends' to take them out of the marts; the prices topic still holds "
        "them until its retention ends, so a drain with --reset-offsets earliest would load "
        "them again"
    )
    return 0


def _reload(settings: Settings, args: argparse.Namespace) -> int:
    """``warehouse reload``: the raw zone's Parquet files back into RAW."""
    from stockpipe.drain.raw_zone import raw_zone_from_settings, reload
    from stockpipe.warehouse import Warehouse

    zone = raw_zone_from_settings(settings, enabled_only=False)
    assert zone is not None
    since = _date("--since", args.since) if args.since else None
    until = _date("--until", args.until) if args.until else None
    with Warehouse.connect(settings, "load") as warehouse:
        report = reload(
            zone,
            warehouse,
            settings.kafka.prices_topic,
            since,
            until,
            on_file=lambda key, r: err.print(f"  {key}: {r.rows} rows so far"),
        )
    console.print(report.summary())
    if not report.files:
        where = settings.lake.s3_bucket_block or settings.lake.s3_bucket or settings.lake_dir
        why = (
            "drains write it only with STOCKPIPE_LAKE__ENABLED=true, which is off"
            if not settings.lake.enabled
            else "no drain has written a batch there for those dates yet"
        )
        err.print(f"note: the raw zone ({where}) holds no files to load: {why}")
    return 0


def _print_node(node) -> None:
    """A line per model as it is built; a test only when it fails."""
    if node.kind == "model" or node.failed:
        err.print(f"  {node.kind} {node.name}: {node.status} ({node.seconds:.2f}s)")


def cmd_trends(args: argparse.Namespace) -> int:
    from stockpipe import alerts, trends
    from stockpipe.warehouse import Warehouse

    settings = _settings(args)
    with Warehouse.connect(settings, "transform") as warehouse:
        report = trends.build_marts(warehouse, settings, full=args.full, progress=_print_node)
        console.print(report.summary())
        # The flow's alerts, sent once whichever of the two built the marts.
        sent = alerts.send_new_alerts(settings, warehouse)
        for alert in sent:
            console.print(f"alert: {alert.message}")
        console.print(f"alerts: {len(sent)} sent to {settings.kafka.alerts_topic}")
        if args.docs:
            index = trends.generate_docs(warehouse, settings, settings.dbt_docs_dir)
            console.print(f"dbt docs (models, tests, lineage): {index}")
        console.print(latest_table(trends.latest_quotes(warehouse)))
        console.print(trends_table(trends.latest_trends(warehouse), console.width))
        movers = trends.top_movers(warehouse)
    if args.report:
        from stockpipe.dashboard.report import write_report

        written = write_report(settings)
        console.print(f"trends report: {written.url or written.path}")
    table = Table(title="Top movers")
    for column in ("#", "symbol", "session", "close", "day chg %"):
        table.add_column(column, justify="left" if column in ("symbol", "session") else "right")
    for row in movers.itertuples():
        table.add_row(
            str(row.move_rank),
            row.symbol,
            str(row.session_date),
            f"{row.close:,.2f}",
            f"{row.change_pct:+.2f}",
        )
    if not len(movers):
        table.caption = "none yet: a mover needs a change on the day, so two sessions of the symbol"
    console.print(table)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from stockpipe import validation

    settings = _settings(args)
    session = _opened_session(args.session).day if args.session else None
    report = validation.run_validation(settings, session)
    if console.width >= WIDE_TABLES:
        table = Table(title=f"Validation of session {report.session}")
        for column in ("suite", "expectation", "result", "failing examples"):
            table.add_column(column)
        for o in report.outcomes:
            result = (
                "skipped" if o.success is None else ("pass" if o.success else "[red]FAIL[/red]")
            )
            table.add_row(o.suite, o.expectation, result, ", ".join(o.examples[:3]))
        console.print(table)
    else:  # a pipe, a log, an 80-column terminal: one outcome a line, nothing cut
        for o in report.outcomes:
            result = "skip" if o.success is None else ("pass" if o.success else "[red]FAIL[/red]")
            examples = f" e.g. {', '.join(o.examples[:3])}" if o.examples else ""
            console.print(f"{result:4} {o.suite}: {o.expectation}{examples}")
    console.print(report.summary())
    console.print(
        f"data docs: {report.docs_dir}" + (f" and {report.docs_url}" if report.docs_url else "")
    )
    if report.docs_offline_problem:
        err.print(f"note: the data docs load their styles from CDNs: {report.docs_offline_problem}")
    alert = validation.publish_outcome(settings, report)
    if alert is not None:
        (console if alert.sent else err).print(alert.text)
    return 0 if report.success else 1


def cmd_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    console.print_json(settings.model_dump_json(indent=2))
    # Both are found from the current directory: another directory is another installation.
    env_file = Path(".env").resolve()
    err.print(
        f"home: {settings.home_dir} (STOCKPIPE_HOME, relative to the current directory); "
        + (f"settings also read from {env_file}" if env_file.is_file() else "no .env file here"),
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start Kafka, simulate a session after a year of daily history, run backfill -> ingest
    -> drain -> trends -> validation as Prefect flows, print the summary."""
    from flows.backfill import backfill_history
    from flows.drain import drain_quotes
    from flows.ingest import ingest_quotes
    from flows.trends import build_trends
    from flows.validate import validate_session
    from stockpipe import trends
    from stockpipe.warehouse import Warehouse

    started = time.monotonic()
    settings = _settings(args)
    if args.live:
        if args.session:
            raise UsageError("demo --live trades now; --session is for the replayed demo")
        return _demo_live(settings)
    if settings.source.kind != "simulated":
        err.print(
            "note: the demo uses the configured source "
            f"({settings.source.kind}); set STOCKPIPE_SOURCE__KIND=simulated for the demo"
        )
    session = _session(args.session)
    console.rule(
        f"stockpipe demo: NYSE session {session.day} "
        f"({len(session.minutes)} one-minute bars per symbol)"
    )
    _ensure_local_kafka(settings)
    from stockpipe.warehouse.setup import setup_warehouse

    # The demo plays the admin too: the one-time set-up, then the runtime flows.
    with Warehouse.connect(settings, "setup") as warehouse:
        applied = setup_warehouse(warehouse, settings)
    console.print(
        f"warehouse set-up: {len(applied)} SQL files applied" if applied else "warehouse set up"
    )

    # A year of daily bars before the previous session (a backfill), so the moving averages,
    # RSI, volatility and 52-week range have their history.
    previous = market_calendar.previous_session(session.day)
    history_end = market_calendar.previous_session(previous.day).day
    history_start = history_end - timedelta(days=DEMO_HISTORY_DAYS)
    history = backfill_history(first=history_start, last=history_end, interval="1d")
    console.print(
        f"backfill daily bars {history_start}..{history_end}: published "
        f"{history['published']}, already published {history['unchanged']}"
    )

    # The previous session's minute bars in one go, so "change on the day" has a previous
    # close.
    windows = [(previous.open, previous.close, f"previous session {previous.day}")]
    minutes = session.minutes
    slices = max(1, min(args.slices, len(minutes)))
    edges = [minutes[round(i * len(minutes) / slices)].to_pydatetime() for i in range(slices)]
    for i, (start, end) in enumerate(pairwise([*edges, session.close]), start=1):
        windows.append((start, end, f"session {session.day} slice {i}/{slices}"))

    published = history["published"]
    for start, end, label in windows:
        result = ingest_quotes(start=start, end=end, symbols=settings.source.watchlist)
        published += result["published"]
        console.print(
            f"ingest {label} ({start:%H:%M}-{end:%H:%M} UTC): published {result['published']} "
            f"bars, already published {result['unchanged']}, "
            f"rejected {sum(result['rejected'].values())}"
        )

    drained = drain_quotes(until_empty=True)
    console.print(
        f"drain: {drained['messages']} messages -> {drained['inserted']} new bars, "
        f"{drained['replaced']} updated, "
        f"{sum(drained['dead_lettered'].values())} dead-lettered"
    )
    build_trends(docs=True, report=True)
    validated = validate_session(session=session.day, return_state=True)

    with Warehouse.connect(settings) as warehouse:
        latest = trends.latest_quotes(warehouse)
        daily = trends.latest_trends(warehouse)
        counts = trends.row_counts(warehouse)
        location = warehouse.location
    console.print(latest_table(latest))
    console.print(trends_table(daily, console.width))
    console.print(
        f"published this run: {published}; warehouse rows: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    console.print(f"{validated.message}")
    console.print(f"data docs: {settings.home_dir / 'data-docs' / 'index.html'}")
    console.print(
        f"dbt docs (models, tests, lineage graph): {settings.dbt_docs_dir / 'index.html'}"
    )
    console.print(f"trends report (offline HTML): {settings.report_dir / 'index.html'}")
    console.print(
        "dashboard: run 'stockpipe dashboard', then open "
        f"http://{settings.dashboard.address}:{settings.dashboard.port}"
    )
    console.print(f"warehouse: {location}")
    console.print(
        f"kafka: {settings.kafka.bootstrap_servers}, topic "
        f"{settings.kafka.prices_topic}; broker log {settings.kafka_dir}/logs/server.log"
    )
    console.print(
        f"done in {time.monotonic() - started:.1f}s. Stop the broker with 'stockpipe kafka down'."
    )
    return 0 if validated.is_completed() else 1


def _demo_live(settings: Settings) -> int:
    """The live path offline: a simulated exchange behind Finnhub's websocket protocol ->
    live ingest -> Kafka -> the live tier (store, views, alerts) -> the dashboard, until
    Ctrl-C."""
    import threading

    from stockpipe.ingest import ingest_window
    from stockpipe.live.exchange import SimulatedExchange
    from stockpipe.live.ingest import follow_trades
    from stockpipe.sources.simulated import SimulatedMarket

    console.rule("stockpipe demo --live: a simulated exchange, trades in real time")
    err.print(
        "note: the simulated exchange's clock is the wall clock: it trades now, on any day "
        "and hour, and its bars carry today's date"
    )
    _ensure_local_kafka(settings)
    watchlist = settings.source.watchlist
    market = SimulatedMarket(listed=watchlist)
    # The previous close, for the change on the day: the daily bars of the last session
    # before today's date in New York (the date the exchange's trades carry).
    closed = market_calendar.previous_session(datetime.now(EXCHANGE_TZ).date())
    history = ingest_window(
        settings, closed.open, closed.close, watchlist, source=market, interval="1d"
    )
    console.print(f"previous close: session {closed.day} ({history.published} daily bars)")
    exchange = SimulatedExchange(market).start()
    trading = exchange.trading_settings(settings)
    console.print(f"exchange: {exchange.url} (Finnhub's trades protocol), {len(watchlist)} symbols")
    stopping = threading.Event()
    ingested: dict = {}

    def ingest() -> None:
        try:
            ingested["report"] = follow_trades(
                trading,
                datetime.now(UTC) + timedelta(seconds=LIVE_DEMO_YEAR / 2),
                # Stopping moves its clock past the deadline: the open bars are published.
                clock=lambda: time.time() + (LIVE_DEMO_YEAR if stopping.is_set() else 0),
                reload_settings=lambda: trading,
            )
        except Exception as exc:  # surfaced by the main thread
            ingested["error"] = exc

    ingesting = threading.Thread(target=ingest, name="live-ingest", daemon=True)
    ingesting.start()
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    console.print(
        f"dashboard: http://{settings.dashboard.address}:{settings.dashboard.port} "
        "(its Live section follows each commit)"
    )
    try:
        return _run_live(settings)
    finally:
        stopping.set()
        ingesting.join(30)
        exchange.stop()
        dashboard.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            dashboard.wait(30)
        if "report" in ingested:
            console.print(ingested["report"].summary())
        if "error" in ingested:
            err.print(f"[red]error[/red]: live ingest: {ingested['error']}")


# -- entry point ---------------------------------------------------------------------------
def _command(
    sub: argparse._SubParsersAction, name: str, text: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A command whose ``--help`` opens with what it does (its line in ``stockpipe --help``
    unless a longer ``description`` is given)."""
    return sub.add_parser(name, help=text, description=description or text)


def _actions(parser: argparse.ArgumentParser, **helps: str) -> list[argparse.ArgumentParser]:
    """Give ``parser`` one sub-command per action, each with its own help and flags.

    Args:
        parser: the command's parser (``kafka``, ``monitoring``, ``warehouse``).
        helps: action name -> what it does (its line in the command's help and its own
            ``--help`` description).

    Returns:
        The actions' parsers, in the order given, for their own flags.
    """
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    parsers = []
    for name, text in helps.items():
        action = actions.add_parser(name, help=text, description=text)
        action.set_defaults(usage_parser=action)
        parsers.append(action)
    return parsers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stockpipe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = _command(sub, "demo", "run the whole pipeline on one simulated session")
    demo.add_argument(
        "--session", metavar="DATE", help="session date YYYY-MM-DD (default: latest closed)"
    )
    demo.add_argument(
        "--slices",
        type=int,
        metavar="N",
        default=4,
        help="ingest runs the session is fast-forwarded in (default 4)",
    )
    demo.add_argument(
        "--live",
        action="store_true",
        help="the live path instead: a simulated exchange's trades in real time -> live "
        "ingest -> Kafka -> the live tier -> the dashboard and alerts, until Ctrl-C",
    )
    demo.set_defaults(func=cmd_demo)

    kafka = _command(sub, "kafka", "the local KRaft broker")
    kafka.set_defaults(func=cmd_kafka)
    _actions(
        kafka,
        install="fetch Apache Kafka's jars (Maven Central) into the cache",
        up="start the single-node KRaft broker (installing first if needed), wait until it "
        "answers and create the topics",
        down="stop the broker (its data stays under the home)",
        status="whether the broker runs, where, and its cluster id (exit 1 if not)",
    )

    monitoring = _command(sub, "monitoring", "local Prometheus, Pushgateway and node exporter")
    monitoring.set_defaults(func=cmd_monitoring)
    _actions(
        monitoring,
        up="start Prometheus, the Pushgateway and the node exporter with this home's "
        "configuration and wait until each answers",
        down="stop them (their data stays under the home)",
        status="which of them answer (exit 1 if any does not)",
    )

    ingest = _command(sub, "ingest", "fetch a session's bars and publish them")
    ingest.add_argument(
        "--session",
        metavar="DATE",
        help="session date YYYY-MM-DD (default: latest closed; a session in progress gives "
        "its bars so far)",
    )
    ingest.add_argument(
        "--symbols",
        nargs="+",
        type=_ticker,
        metavar="TICKER",
        help="tickers (default: the watchlist, STOCKPIPE_WATCHLIST)",
    )
    ingest.add_argument(
        "--follow",
        action="store_true",
        help="finnhub: live trades over the websocket as 1-minute bars until the close",
    )
    ingest.set_defaults(func=cmd_ingest)

    history = _command(
        sub,
        "backfill",
        "publish history (daily or 1-minute bars) for the watchlist",
        description="Publish the bars of the closed sessions --from..--to to the prices topic "
        "(re-running publishes nothing new). Daily bars go back as far as the source serves; "
        "yfinance serves 1-minute bars of the last 30 days.",
    )
    history.add_argument(
        "--from", dest="first", required=True, metavar="DATE", help="first date YYYY-MM-DD"
    )
    history.add_argument(
        "--to", dest="last", metavar="DATE", help="last date (default: latest closed session)"
    )
    history.add_argument("--interval", choices=["1d", "1m"], default="1d", help="default 1d")
    history.add_argument(
        "--symbols",
        nargs="+",
        type=_ticker,
        metavar="TICKER",
        help="tickers (default: the watchlist, STOCKPIPE_WATCHLIST)",
    )
    history.set_defaults(func=cmd_backfill)

    live = _command(
        sub,
        "live",
        "the live tier: follow the prices topic into the live store, refresh the live "
        "marts and send alerts as bars arrive, until Ctrl-C",
    )
    live.set_defaults(func=cmd_live)

    dashboard = _command(sub, "dashboard", "the trends in the browser (Streamlit)")
    dashboard.add_argument(
        "--port", type=int, metavar="N", help="default STOCKPIPE_DASHBOARD__PORT (8501)"
    )
    dashboard.set_defaults(func=cmd_dashboard)

    drain = _command(sub, "drain", "load the prices topic into the warehouse")
    drain.add_argument(
        "--max-records",
        type=int,
        metavar="N",
        help="records per warehouse commit (default STOCKPIPE_DRAIN__MAX_RECORDS)",
    )
    drain.add_argument(
        "--reset-offsets",
        choices=["earliest", "latest"],
        help="after a rebuilt cluster or recreated topic: resume from the earliest offset "
        "(reload what the topic holds; no duplicates) or the latest (skip it)",
    )
    mode = drain.add_mutually_exclusive_group()
    mode.add_argument(
        "--until-empty", action="store_true", default=True, help="stop when caught up (default)"
    )
    mode.add_argument("--follow", action="store_true", help="keep draining until Ctrl-C")
    drain.set_defaults(func=cmd_drain)

    warehouse = _command(sub, "warehouse", "the warehouse's set-up and upkeep")
    warehouse.set_defaults(func=cmd_warehouse)
    setup, reload, remove = _actions(
        warehouse,
        setup="create or update the warehouse's objects, as the admin role, once per change "
        "of sql/setup (files already applied are skipped)",
        reload="load the raw zone's Parquet files into RAW again (no duplicates, the later "
        "fetch wins)",
        remove="delete symbols' bars from RAW (and, at the next trend build, from the marts)",
    )
    setup.add_argument("--plan", action="store_true", help="show what would run, run nothing")
    setup.add_argument("--force", action="store_true", help="run every file, applied or not")
    reload.add_argument(
        "--since", metavar="DATE", help="first date=YYYY-MM-DD folder (default: the first)"
    )
    reload.add_argument(
        "--until", metavar="DATE", help="last date=YYYY-MM-DD folder (default: the last)"
    )
    remove.add_argument(
        "--symbols",
        nargs="+",
        type=_ticker,
        required=True,
        metavar="TICKER",
        help="the tickers whose bars go",
    )
    remove.add_argument(
        "--since", metavar="DATE", help="first day YYYY-MM-DD, UTC (default: the first bar)"
    )
    remove.add_argument(
        "--until",
        metavar="DATE",
        help="the day after the last, YYYY-MM-DD, UTC (default: the last bar)",
    )

    trends_cmd = _command(
        sub, "trends", "build the trend marts (dbt), send new alerts; latest figures, movers"
    )
    trends_cmd.add_argument(
        "--full",
        action="store_true",
        help="rebuild from all of RAW (not only what the load log names); run every test",
    )
    trends_cmd.add_argument(
        "--docs",
        action="store_true",
        help="also write dbt's docs site (lineage graph) to <home>/data-docs/dbt",
    )
    trends_cmd.add_argument(
        "--report",
        action="store_true",
        help="also write the static HTML report (the dashboard's charts) to "
        "<home>/data-docs/report",
    )
    trends_cmd.set_defaults(func=cmd_trends)
    validate = _command(sub, "validate", "Great Expectations checks of a session")
    validate.add_argument(
        "--session",
        metavar="DATE",
        help="session date YYYY-MM-DD (default: latest closed; a session still open is "
        "validated only when named, for freshness)",
    )
    validate.set_defaults(func=cmd_validate)

    _command(sub, "config", "show the effective settings").set_defaults(func=cmd_config)
    for command in sub.choices.values():
        command.set_defaults(usage_parser=command)  # an action's own parser wins (_actions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Prefect's ephemeral API server (the demo's flows, with no PREFECT_API_URL) can take
    # longer to start on a small machine than Prefect's own default allows (README, "Why the
    # tuned settings are what they are"); a user's own setting still wins.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # No usage statistics from the ephemeral server: nothing here needs the internet, and
    # offline each attempt logged an error.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Nor does it register the block types of every installed integration at start: that
    # imports prefect-aws, prefect-snowflake and dbt-core in the server (its memo still
    # imports them to compare), about half of each start, for types these flows never look up by
    # name. A block saved to a server registers its own type.
    os.environ.setdefault("PREFECT_API_BLOCKS_REGISTER_ON_START", "false")
    os.environ.setdefault("PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION", "false")
    # argparse reports a flag no parser took with the top parser's usage; the command's own
    # (or its action's) names where the flag was wrong and which flags it has.
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args.usage_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    # snowflake-connector's vendored requests warns about the installed urllib3 at import;
    # our pins are tested together (pyproject.toml), so the warning says nothing to act on.
    warnings.filterwarnings("ignore", message=r"urllib3 \(.*doesn't match a supported version")
    # The same for the Python processes started from here (Prefect's ephemeral server
    # imports the connector when it registers prefect-snowflake's blocks).
    os.environ.setdefault("PYTHONWARNINGS", "ignore:urllib3 (")
    if not args.verbose:
        # The CLI prints its own progress; Prefect's per-task lines still reach its API
        # (the UI), only the terminal is spared them.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    level = logging.DEBUG if args.verbose else logging.WARNING
    # The handler's level, not only the root logger's: libraries that set their own loggers
    # to INFO (Prefect, Great Expectations) would otherwise print through it.
    terminal = logging.StreamHandler()
    terminal.setLevel(level)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=[terminal]
    )
    previous_sigterm = raise_on_sigterm()
    for line in unknown_variables():
        err.print(f"[yellow]warning[/yellow]: {line}")
    try:
        return args.func(args)
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red]: {exc}")
        return 2
    except (UsageError, ReplayFileError) as exc:
        err.print(f"[red]error[/red]: {exc}")
        return 2
    except Terminated:
        err.print("stopped by SIGTERM")
        return 143
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # the CLI's last line: say what failed, not a traceback
        if args.verbose:
            raise
        # Our own errors say what failed and what to do; others need their type to make sense.
        ours = type(exc).__module__.startswith("stockpipe.")
        err.print(f"[red]error[/red]: {'' if ours else type(exc).__name__ + ': '}{exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


if __name__ == "__main__":
    sys.exit(main())
