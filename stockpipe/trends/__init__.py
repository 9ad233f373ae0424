"""The trend marts: built by the dbt project in ``sql/`` (:mod:`.build`), read by
:mod:`.marts`."""

from stockpipe.trends.build import BuildReport, TrendBuildFailed, build_marts, generate_docs
from stockpipe.trends.marts import (
    LATEST_COLUMNS,
    latest_quotes,
    latest_trends,
    row_counts,
    top_movers,
)

__all__ = [
    "LATEST_COLUMNS",
    "BuildReport",
    "TrendBuildFailed",
    "build_marts",
    "generate_docs",
    "latest_quotes",
    "latest_trends",
    "row_counts",
    "top_movers",
]
