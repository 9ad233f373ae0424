"""Trends flow: (re)build the trend views and publish the latest figures per symbol."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from stockpipe import trends
from stockpipe.scheduling import MarketHours, skip_outside_market_hours
from stockpipe.settings import load_settings
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.sql_runner import apply_sql


@task(retries=3, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def refresh_trends() -> list[dict]:
    with Warehouse.connect(load_settings()) as warehouse:
        apply_sql(warehouse)
        latest = trends.latest_quotes(warehouse)
    return latest.astype(object).where(latest.notna(), None).to_dict("records")


@flow(name="build-trends")
def build_trends(market_hours: MarketHours = "ignore") -> list[dict] | State:
    """Refresh the STAGING and MARTS views and publish the latest quote per symbol.

    Args:
        market_hours: "in_session" or "after_close" on schedules (NYSE calendar guard).
    """
    if (skipped := skip_outside_market_hours(market_hours)) is not None:
        return skipped
    latest = refresh_trends()
    create_table_artifact(
        key="latest-trends",
        table=[
            {k: (str(v) if k == "session_date" else v) for k, v in row.items()} for row in latest
        ],
        description="Latest bar, day change and moving averages per symbol",
    )
    return latest
