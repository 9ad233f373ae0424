"""How a signal that DuckDB turned into its own error is recognised (stockpipe.runtime)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

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


# A fresh interpreter: decode a batch of good and bad messages as the drain does, then ask
# for a DataFrame as something else in the process might.
DECODE_WITHOUT_PANDAS = """
import json, sys
from confluent_kafka import Message
from stockpipe.runtime import keep_pandas_out_of_arrow
from stockpipe.drain.decoding import decode_batch
from tests.support import VALID_QUOTE
assert "pandas" not in sys.modules, "imported before the drain starts"
keep_pandas_out_of_arrow()
good = json.dumps(VALID_QUOTE).encode()
values = [good, b"{not json", json.dumps(VALID_QUOTE | {"volume": -1}).encode()]
messages = [Message(topic="prices", partition=0, offset=i, key=b"AAPL", value=v, timestamp=(1, 1))
            for i, v in enumerate(values)]
decoded = decode_batch(messages, 16384)
rows = decoded.rows.to_pylist()
loaded = "pandas" in sys.modules
frame = decoded.rows.to_pandas()
print(json.dumps({"rows": len(rows), "rejected": len(decoded.rejections),
                  "pandas_while_decoding": loaded, "frame_rows": len(frame)}))
"""


def test_a_drain_decodes_without_loading_pandas_and_pandas_still_works_when_asked() -> None:
    # ~35 MB of a drain's 250 MB budget (bench_drain): pyarrow imports pandas the first time
    # it converts Python values unless told the process has none.
    done = subprocess.run(
        [sys.executable, "-c", DECODE_WITHOUT_PANDAS],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "rows": 1,
        "rejected": 2,
        "pandas_while_decoding": False,
        "frame_rows": 1,
    }
