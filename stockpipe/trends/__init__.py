"""The trend marts: built by the dbt project in ``sql/`` (:mod:`.build`), read by
:mod:`.marts`; the stage that builds them and sends their alerts is :mod:`.refresh`."""

from stockpipe.trends.build import (
    BuildReport,
    TrendBuildFailed,
    build_marts,
    generate_docs,
    run_unit_tests,
)
from stockpipe.trends.marts import (
    LATEST_COLUMNS,
    latest_quotes,
    latest_trends,
    row_counts,
    top_movers,
)
from stockpipe.trends.refresh import TrendsRun, refresh_trends

__all__ = [
    "LATEST_COLUMNS",
    "BuildReport",
    "TrendBuildFailed",
    "TrendsRun",
    "build_marts",
    "generate_docs",
    "latest_quotes",
    "latest_trends",
    "refresh_trends",
    "row_counts",
    "run_unit_tests",
    "top_movers",
]
