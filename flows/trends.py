"""Trends flow: build the trend marts (dbt), publish the latest figures, send new alerts."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from flows.market_hours import MarketHours, skip_outside_market_hours
from stockpipe import metrics, trends
from stockpipe.settings import load_settings
from stockpipe.warehouse import Warehouse


def _records(frame) -> list[dict]:
    clean = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (str(v) if k == "session_date" else v) for k, v in row.items()}
        for row in clean.to_dict("records")
    ]


def publish_nodes(build: trends.BuildReport) -> None:
    """Every dbt model and test of the build, its status, time and message, as a table in the
    UI (what a task per node would show, without its cost)."""
    if build.nodes:
        create_table_artifact(
            key="dbt-build",
            table=[
                {"node": n.name, "kind": n.kind, "status": n.status}
                | {"seconds": round(n.seconds, 2), "message": n.message}
                for n in build.nodes
            ],
            description=f"dbt build: {build.summary()}",
        )


def refresh(full: bool, docs: bool, node_tasks: bool) -> None:
    """The trends stage: build the marts (each dbt model and test in the ``dbt-build``
    artifact, and as a task of its own with ``node_tasks``), send the new alerts, write dbt's
    docs if asked."""
    try:
        run = trends.refresh_trends(load_settings(), full=full, docs=docs, node_tasks=node_tasks)
    except trends.TrendBuildFailed as failed:
        publish_nodes(failed.report)
        raise
    publish_nodes(run.build)
    logger = get_run_logger()
    logger.info(run.build.summary())
    if run.docs_index is not None:
        logger.info("dbt docs (models, tests, lineage): %s", run.docs_index)
    for alert in run.alerts.sent:
        logger.info("alert: %s", alert.message)
    if run.alerts.waiting:
        logger.warning(
            "%d alert(s) wait for the next run: %s", len(run.alerts.waiting), run.alerts.problem
        )


@task(retries=3, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def read_latest() -> tuple[list[dict], list[dict]]:
    """The latest figures per symbol and the top movers, from the marts."""
    with Warehouse.connect(load_settings(), "read") as warehouse:
        return _records(trends.latest_quotes(warehouse)), _records(trends.top_movers(warehouse))


@task(retries=2, retry_delay_seconds=[5, 20], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def write_report() -> None:
    """The static HTML report with the dashboard's charts, linked from an artifact."""
    from stockpipe.dashboard.report import write_report as write  # Plotly: only when asked

    result = write(load_settings())
    target = result.url or result.path.as_uri()
    create_link_artifact(
        key="trends-report",
        link=target,
        link_text=f"Trends report ({result.symbols} symbols)",
        description="The dashboard's charts as one offline HTML page",
    )
    get_run_logger().info("trends report: %s", target)


@flow(name="build-trends")
def build_trends(
    market_hours: MarketHours = "ignore",
    full_refresh: bool = False,
    docs: bool = False,
    report: bool = False,
    dbt_node_tasks: bool = False,
) -> list[dict] | State:
    """Build the trend marts, publish the latest figures and movers, send new alerts.

    Args:
        market_hours: "in_session" or "after_close" on schedules (NYSE calendar guard).
        full_refresh: rebuild the incremental marts from all of RAW, not only the symbols
            and sessions the load log names, and run every test.
        docs: also write dbt's docs site (models, tests, the lineage graph) beside the Great
            Expectations Data Docs.
        report: also write the static HTML report (the dashboard's charts) beside them, and
            to S3 when the Data Docs go there.
        dbt_node_tasks: also run each dbt model and test as a task of this run, with its
            own state and logs in the UI (prefect-dbt's runner: ~0.3 s of CPU a node, README
            "Benchmark"); off, dbt's own runner builds and the ``dbt-build`` artifact lists
            every node's status and time.
    """
    if (skipped := skip_outside_market_hours(market_hours)) is not None:
        return skipped
    with metrics.pushed_at_end("build-trends", load_settings().metrics.pushgateway_url):
        refresh(full_refresh, docs, dbt_node_tasks)
        latest, movers = read_latest()
        create_table_artifact(
            key="latest-trends",
            table=latest,
            description="Latest bar, day change and moving averages per symbol",
        )
        create_table_artifact(
            key="top-movers", table=movers, description="Biggest moves of the latest session"
        )
        if report:
            write_report()
        return latest
