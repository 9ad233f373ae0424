"""Validate flow: run the Great Expectations suites on a session and report the outcome."""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from flows.market_hours import MarketHours, scheduled_time, skip_outside_market_hours
from stockpipe import market_calendar, metrics, validation
from stockpipe.settings import load_settings


@task(retries=2, retry_delay_seconds=[10, 30], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def run_suites(session: date | None) -> validation.ValidationRun:
    """The suites, then the outcome's metrics and (on failure) its alert."""
    return validation.validate_and_alert(load_settings(), session, now=scheduled_time())


@flow(name="validate-session")
def validate_session(session: date | None = None, market_hours: MarketHours = "ignore") -> State:
    """Validate RAW, STAGING and the daily marts of a session with Great Expectations.

    Args:
        session: the session date (default: the latest closed session; with
            ``market_hours="in_session"``, the session in progress).
        market_hours: "in_session" (intraday freshness check) or "after_close" on schedules.
    """
    if (skipped := skip_outside_market_hours(market_hours)) is not None:
        return skipped
    if session is None and market_hours == "in_session":
        session = market_calendar.latest_session(scheduled_time()).day
    settings = load_settings()
    with metrics.pushed_at_end("validate-session", settings.metrics.pushgateway_url):
        run = run_suites(session)
        report, alert = run.report, run.alert
        create_table_artifact(
            key="validation-results",
            table=[
                {
                    "suite": o.suite,
                    "expectation": o.expectation,
                    "result": "skipped" if o.success is None else ("pass" if o.success else "FAIL"),
                    "why": o.why,
                    "failing examples": ", ".join(o.examples),
                }
                for o in report.outcomes
            ],
            description=f"Great Expectations results for session {report.session}",
        )
        logger = get_run_logger()
        logger.info(
            "%s; data docs: %s %s", report.summary(), report.docs_dir, report.docs_url or ""
        )
        if report.docs_offline_problem:
            logger.warning(
                "the data docs load their styles from CDNs: %s", report.docs_offline_problem
            )
        if alert is not None:
            (logger.info if alert.sent else logger.warning)(alert.text)
    if report.success:
        return Completed(message=report.summary())
    return Failed(message=report.summary())
