"""Market-hours guards for scheduled flow runs (Prefect glue: the rule is the library's
market_calendar.guard).

Cron schedules are written in America/New_York and cover the regular session's clock
times on weekdays; the exchange calendar decides the rest. A run that lands on a holiday,
a weekend, before the open or after an (early) close ends at once in a Completed state
named "Skipped", with the reason, so the Prefect UI shows at a glance that nothing ran
and why. DST changes need no edit: the crons are local time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from prefect.states import Completed, State

from stockpipe.market_calendar import guard

MarketHours = Literal["in_session", "after_close", "ignore"]
SKIPPED = "Skipped"


def scheduled_time() -> datetime:
    """The current flow run's scheduled start (when it should have run), else now."""
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time
    if scheduled is None:
        return datetime.now(UTC)
    return datetime.fromisoformat(str(scheduled).replace("Z", "+00:00"))


def skip_outside_market_hours(market_hours: MarketHours) -> State | None:
    """None when the run should go ahead; otherwise the Skipped state to return."""
    if market_hours == "ignore":
        return None
    decision = guard(market_hours, scheduled_time())
    if decision.run:
        return None
    return Completed(name=SKIPPED, message=f"NYSE calendar guard: {decision.reason}")
