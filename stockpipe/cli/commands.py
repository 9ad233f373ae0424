"""The commands: each parses what it needs, calls the library (or the flows) and prints.
One function per command (``cmd_<name>``), the parser's ``func``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from stockpipe.cli.arguments import (
    UsageError,
    calendar_date,
    iso_date,
    opened_session_arg,
    session_arg,
    settings_of,
)
from stockpipe.cli.render import (
    WIDE_TABLES,
    console,
    err,
    latest_table,
    print_node,
    printed_lines,
    trends_table,
)
from stockpipe.runtime import Terminated
from stockpipe.settings import Settings

if TYPE_CHECKING:
    from stockpipe.live.store import LiveTierReport

# How often `stockpipe live` prints a progress line.
LIVE_PROGRESS_SECONDS = 5.0


def ensure_local_kafka(settings: Settings) -> None:
    from stockpipe.local_stack.broker import broker_from_settings
    from stockpipe.streaming.topics import ensure_topics

    if settings.profile == "local":
        status = broker_from_settings(settings).start()
        console.print(f"kafka: running on {status.bootstrap_servers} (cluster {status.cluster_id})")
    created = ensure_topics(settings.kafka)
    console.print("topics: " + ", ".join(f"{k} ({v})" for k, v in created.items()))


# -- commands ------------------------------------------------------------------------------
def cmd_kafka(args: argparse.Namespace) -> int:
    from stockpipe.local_stack.broker import broker_from_settings
    from stockpipe.streaming.topics import ensure_topics

    settings = settings_of(args)
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

    monitoring = LocalMonitoring(settings_of(args))
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

    settings = settings_of(args)
    if args.follow:
        return _follow(settings)
    session = opened_session_arg(args.session)
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
    from stockpipe.live.ingest import FollowReport, follow_trades, session_close_after

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
    last: list[FollowReport] = []

    def on_publish(report: FollowReport) -> None:
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
    return _run_live(settings_of(args))


def _run_live(settings: Settings) -> int:
    from stockpipe.live.store import LiveStore

    live = LiveStore(settings, on_refresh=_live_progress())
    console.print(
        f"live tier: following {settings.kafka.prices_topic} into {live.store.warehouse_dir} "
        f"(group {live.store.kafka.consumer_group}); the dashboard reads {live.snapshot}; "
        "Ctrl-C stops"
    )
    return _live_tier_ended(live.run())


def _live_tier_ended(report: LiveTierReport) -> int:
    """The live tier's summary; the signal that stopped it re-raised (exit 130 / 143)."""
    console.print(report.summary())
    if report.drain is not None and report.drain.interrupted is not None:
        raise report.drain.interrupted
    return 0


def _live_progress() -> Callable[[LiveTierReport], None]:
    """The live tier's progress: a line every few seconds (a commit a second would flood a
    terminal or a log)."""
    printed = [0.0]

    def on_refresh(report: LiveTierReport) -> None:
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

    return on_refresh


def cmd_backfill(args: argparse.Namespace) -> int:
    """Publish history with a progress bar; the drain and trends take it from there."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from stockpipe import market_calendar
    from stockpipe.backfill import BackfillPlan, BackfillReport, BackfillWindow, backfill

    settings = settings_of(args)
    first = calendar_date("--from", args.first)
    closed = market_calendar.latest_closed_session().day
    last = calendar_date("--to", args.last) if args.last else closed
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


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the Streamlit dashboard until Ctrl-C or SIGTERM (exit 130 / 143, as every
    command): Streamlit's server runs as a child that gets the same signal and is waited
    for, so nothing is left listening."""
    from stockpipe.dashboard import SERVER

    settings = settings_of(args)
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

    settings = settings_of(args)
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

    settings = settings_of(args)
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
        datetime.combine(iso_date(flag, value), datetime.min.time()) if value else None
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
    since = calendar_date("--since", args.since) if args.since else None
    until = calendar_date("--until", args.until) if args.until else None
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


def cmd_trends(args: argparse.Namespace) -> int:
    from stockpipe import trends
    from stockpipe.warehouse import Warehouse

    settings = settings_of(args)
    run = trends.refresh_trends(settings, full=args.full, docs=args.docs, progress=print_node)
    console.print(run.build.summary())
    for alert in run.alerts.sent:
        console.print(f"alert: {alert.message}")
    console.print(f"alerts: {len(run.alerts.sent)} sent to {settings.kafka.alerts_topic}")
    if run.alerts.waiting:
        err.print(
            f"note: {len(run.alerts.waiting)} alert(s) wait for the next 'stockpipe trends' "
            f"({run.alerts.problem})"
        )
    if run.docs_index is not None:
        console.print(f"dbt docs (models, tests, lineage): {run.docs_index}")
    with Warehouse.connect(settings, "read") as warehouse:
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

    settings = settings_of(args)
    session = opened_session_arg(args.session).day if args.session else None
    run = validation.validate_and_alert(settings, session)
    report = run.report
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
    if run.alert is not None:
        (console if run.alert.sent else err).print(run.alert.text)
    return 0 if report.success else 1


def cmd_config(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    console.print_json(settings.model_dump_json(indent=2))
    # Both are found from the current directory: another directory is another installation.
    env_file = Path(".env").resolve()
    err.print(
        f"home: {settings.home_dir} (STOCKPIPE_HOME, relative to the current directory); "
        + (f"settings also read from {env_file}" if env_file.is_file() else "no .env file here"),
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start Kafka, then the demo flow (a year of daily history, a session's minutes,
    drain, trends, validation); print each step's line and the summary."""
    from flows.demo import demo_session

    started = time.monotonic()
    settings = settings_of(args)
    if args.live:
        if args.session:
            raise UsageError("demo --live trades now; --session is for the replayed demo")
        return _demo_live(settings)
    if settings.source.kind != "simulated":
        err.print(
            "note: the demo uses the configured source "
            f"({settings.source.kind}); set STOCKPIPE_SOURCE__KIND=simulated for the demo"
        )
    session = session_arg(args.session)
    console.rule(
        f"stockpipe demo: NYSE session {session.day} "
        f"({len(session.minutes)} one-minute bars per symbol)"
    )
    ensure_local_kafka(settings)
    with printed_lines("flows.demo"):
        report = demo_session(session=session.day, slices=args.slices)
    console.print(latest_table(report.latest))
    console.print(trends_table(report.daily, console.width))
    console.print(
        f"published this run: {report.published}; warehouse rows: "
        + ", ".join(f"{k} {v}" for k, v in report.row_counts.items())
    )
    console.print(report.validation)
    console.print(f"data docs: {settings.home_dir / 'data-docs' / 'index.html'}")
    console.print(
        f"dbt docs (models, tests, lineage graph): {settings.dbt_docs_dir / 'index.html'}"
    )
    console.print(f"trends report (offline HTML): {settings.report_dir / 'index.html'}")
    console.print(
        "dashboard: run 'stockpipe dashboard', then open "
        f"http://{settings.dashboard.address}:{settings.dashboard.port}"
    )
    console.print(f"warehouse: {report.location}")
    console.print(
        f"kafka: {settings.kafka.bootstrap_servers}, topic "
        f"{settings.kafka.prices_topic}; broker log {settings.kafka_dir}/logs/server.log"
    )
    console.print(
        f"done in {time.monotonic() - started:.1f}s. Stop the broker with 'stockpipe kafka down'."
    )
    return 0 if report.validated else 1


def _demo_live(settings: Settings) -> int:
    """``demo --live``: the library's live demo, with the dashboard served beside it."""
    from stockpipe.live.demo import run_live_demo

    console.rule("stockpipe demo --live: a simulated exchange, trades in real time")
    err.print(
        "note: the simulated exchange's clock is the wall clock: it trades now, on any day "
        "and hour, and its bars carry today's date"
    )
    ensure_local_kafka(settings)
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    console.print(
        f"dashboard: http://{settings.dashboard.address}:{settings.dashboard.port} "
        "(its Live section follows each commit); Ctrl-C stops"
    )
    try:
        with printed_lines("stockpipe.live.demo"):
            report = run_live_demo(settings, on_refresh=_live_progress())
    finally:
        dashboard.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            dashboard.wait(30)
    if report.trades is not None:
        console.print(report.trades.summary())
    if report.ingest_error is not None:
        err.print(f"[red]error[/red]: live ingest: {escape(str(report.ingest_error))}")
    return _live_tier_ended(report.tier)
