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

import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence

from rich.markup import escape

from stockpipe.cli.arguments import UsageError
from stockpipe.cli.parser import build_parser
from stockpipe.cli.render import err
from stockpipe.runtime import Terminated, raise_on_sigterm
from stockpipe.settings import ConfigError, unknown_variables

__all__ = ["main"]


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
        err.print(f"[red]configuration error[/red]: {escape(str(exc))}")
        return 2
    except Terminated:
        err.print("stopped by SIGTERM")
        return 143
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # the CLI's last line: say what failed, not a traceback
        # A bad option, date or ticker, or the user's replay file: a usage error.
        if isinstance(exc, UsageError) or _replay_file_error(exc):
            err.print(f"[red]error[/red]: {escape(str(exc))}")
            return 2
        if args.verbose:
            raise
        # Our own errors say what failed and what to do; others need their type to make sense.
        ours = type(exc).__module__.startswith("stockpipe.")
        said = escape(str(exc))  # an error's text is not markup: "stockpipe[embedded]"
        err.print(f"[red]error[/red]: {'' if ours else type(exc).__name__ + ': '}{said}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _replay_file_error(exc: Exception) -> bool:
    """Whether ``exc`` is a :class:`~stockpipe.sources.replay.ReplayFileError`.

    The sources are not imported to ask: they bring pandas (~35 MB), which commands such as
    ``stockpipe drain`` never load, and no such error exists before they are loaded.
    """
    replay = sys.modules.get("stockpipe.sources.replay")
    return replay is not None and isinstance(exc, replay.ReplayFileError)
