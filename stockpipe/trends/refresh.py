"""The trends stage, as the flow and ``stockpipe trends`` both run it: build the marts with
dbt, send the alerts the new figures raise (each once), and optionally write dbt's docs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stockpipe import alerts
from stockpipe.settings import Settings
from stockpipe.trends.build import BuildReport, NodeResult, build_marts, generate_docs
from stockpipe.warehouse import Warehouse


@dataclass(frozen=True)
class TrendsRun:
    """What one run of the stage did.

    Attributes:
        build: the dbt build (models, tests, timings).
        alerts: the alerts sent now, and those that wait for Kafka (sent by a later run).
        docs_index: dbt's docs site, when asked for.
    """

    build: BuildReport
    alerts: alerts.AlertsSent
    docs_index: Path | None


def refresh_trends(
    settings: Settings,
    full: bool = False,
    docs: bool = False,
    progress: Callable[[NodeResult], None] | None = None,
    node_tasks: bool = False,
) -> TrendsRun:
    """Build the marts, send the new alerts, and write dbt's docs if ``docs``.

    Args:
        full: rebuild the incremental marts from all of RAW and run every test.
        progress: called with each model and test as dbt finishes it.
        node_tasks: inside a flow run, each model and test as a task of its own.
    """
    with Warehouse.connect(settings, "transform") as warehouse:
        build = build_marts(
            warehouse, settings, full=full, progress=progress, node_tasks=node_tasks
        )
        sent = alerts.send_new_alerts(settings, warehouse)
        index = generate_docs(warehouse, settings, settings.dbt_docs_dir) if docs else None
    return TrendsRun(build=build, alerts=sent, docs_index=index)
