"""The Snowflake tier: ``backend=snowflake`` with the real snowflake-connector-python over
HTTP to a server speaking Snowflake's protocol (``tests/snowflake/server.py``: fakesnow's,
recorded). No in-process patch and no DuckDB shortcut: the production code path, as far
as it can run without Snowflake.
"""

from __future__ import annotations

import pytest

from stockpipe.settings import Settings, load_settings
from tests.support import set_up_warehouse


@pytest.fixture
def snowflake_settings(snowflake_env: str) -> Settings:
    """Settings for a set-up warehouse on the test server (no Kafka)."""
    settings = load_settings()
    set_up_warehouse(settings)
    return settings
