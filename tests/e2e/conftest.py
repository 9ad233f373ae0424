"""One Prefect API for the in-process flow tests of this package (its start-up is ~30 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="package")
def prefect_api() -> Iterator[None]:
    # Imported here, not at collection: it imports Prefect's whole server (~4 s per worker).
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
