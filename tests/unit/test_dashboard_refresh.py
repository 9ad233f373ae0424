"""When the dashboard's trend views refresh: on NYSE's calendar, at any moment the test
chooses (the page itself asks at its own moment: tests/dashboard/test_app.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stockpipe.dashboard.data import refresh_plan

OPEN = "Refreshing every 30 s while the market is open."
CLOSED = "The market is closed: reload the page for new data."


@pytest.mark.parametrize(
    ("moment", "seconds", "caption"),
    [
        (datetime(2025, 11, 26, 14, 29, 59, tzinfo=UTC), None, CLOSED),  # a second to the open
        (datetime(2025, 11, 26, 14, 30, tzinfo=UTC), 30, OPEN),  # the open
        (datetime(2025, 11, 26, 20, 59, 59, tzinfo=UTC), 30, OPEN),
        (datetime(2025, 11, 26, 21, 0, tzinfo=UTC), None, CLOSED),  # the close
        (datetime(2025, 11, 27, 16, 0, tzinfo=UTC), None, CLOSED),  # Thanksgiving
        (datetime(2025, 11, 28, 17, 59, tzinfo=UTC), 30, OPEN),  # the early close's last minute
        (datetime(2025, 11, 28, 18, 0, tzinfo=UTC), None, CLOSED),
        (datetime(2025, 11, 29, 15, 0, tzinfo=UTC), None, CLOSED),  # a Saturday
    ],
)
def test_the_trend_views_refresh_only_while_nyse_trades(
    moment: datetime, seconds: int | None, caption: str
) -> None:
    plan = refresh_plan(30, moment)
    assert (plan.seconds, plan.caption) == (seconds, caption)
