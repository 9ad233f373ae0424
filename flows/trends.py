"""Trends flow: (re)build the trend views and publish the latest figures per symbol."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from stockpipe import alerts, metrics, trends
from stockpipe.scheduling import MarketHours, skip_outside_market_hours
from stockpipe.settings import load_settings
from stockpipe.warehouse import Warehouse


def _records(frame) -> list[dict]:
    clean = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (str(v) if k == "session_date" else v) for k, v in row.items()}
        for row in clean.to_dict("records")
    ]


@task(retries=3, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def refresh_trends(full: bool) -> tuple[list[dict], list[dict]]:
    """Refresh the daily marts (only the sessions that changed, unless ``full``); read the
    latest figures and the top movers."""
    with Warehouse.connect(load_settings(), "transform") as warehouse:
        get_run_logger().info(trends.refresh_daily_bars(warehouse, full=full).summary())
        return _records(trends.latest_quotes(warehouse)), _records(trends.top_movers(warehouse))


@task(retries=2, retry_delay_seconds=[5, 20], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def send_alerts() -> list[str]:
    """Publish each alert condition once per symbol and session to the alerts topic."""
    settings = load_settings()
    with Warehouse.connect(settings, "transform") as warehouse:
        found = alerts.find_alerts(warehouse, settings.trends.alert_day_change_pct)
        return [a.message for a in alerts.publish_new_alerts(settings, warehouse, found)]


@flow(name="build-trends")
def build_trends(
    market_hours: MarketHours = "ignore", full_refresh: bool = False
) -> list[dict] | State:
    """Refresh the trend views, publish the latest figures and movers, send new alerts.

    Args:
        market_hours: "in_session" or "after_close" on schedules (NYSE calendar guard).
        full_refresh: rebuild every session's daily bars, not only the changed ones.
    """
    if (skipped := skip_outside_market_hours(market_hours)) is not None:
        return skipped
    with metrics.pushed_at_end("build-trends", load_settings().metrics.pushgateway_url):
        latest, movers = refresh_trends(full_refresh)
        create_table_artifact(
            key="latest-trends",
            table=latest,
            description="Latest bar, day change and moving averages per symbol",
        )
        create_table_artifact(
            key="top-movers", table=movers, description="Biggest moves of the latest session"
        )
        for message in send_alerts():
            get_run_logger().info("alert: %s", message)
        return latest
