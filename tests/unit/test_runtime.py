"""How a signal that DuckDB turned into its own error is recognised (stockpipe.runtime)."""

from __future__ import annotations

import signal

import duckdb
import pytest

from stockpipe import runtime
from stockpipe.runtime import Terminated, as_interrupt


@pytest.fixture
def sigterm_received(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_signals_received", {signal.SIGTERM})


@pytest.mark.parametrize(
    "error",
    [
        duckdb.InterruptException("INTERRUPT Error: Interrupted!"),
        # SIGTERM while DuckDB read a registered Arrow batch through Python (seen in CI):
        duckdb.InvalidInputException(
            "Invalid Input Error: reading the schema of the object registered as "
            "'_batch_20487fe3155846dc835d60712c1c9686' failed: Terminated: "
        ),
    ],
)
def test_duckdbs_errors_for_a_sigterm_are_the_sigterm(error, sigterm_received) -> None:
    assert isinstance(as_interrupt(error), Terminated)


def test_other_errors_are_not_signals(sigterm_received) -> None:
    assert as_interrupt(duckdb.InvalidInputException("Invalid Input Error: bad date")) is None
    assert as_interrupt(ValueError("the Terminated column failed: to parse")) is None
