"""The command line's parser: every command and action with its help (``stockpipe --help``)."""

from __future__ import annotations

import argparse

from stockpipe.cli.arguments import ticker
from stockpipe.cli.commands import (
    cmd_backfill,
    cmd_config,
    cmd_dashboard,
    cmd_demo,
    cmd_drain,
    cmd_ingest,
    cmd_kafka,
    cmd_live,
    cmd_monitoring,
    cmd_trends,
    cmd_validate,
    cmd_warehouse,
)


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
        type=ticker,
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
        type=ticker,
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
        type=ticker,
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
