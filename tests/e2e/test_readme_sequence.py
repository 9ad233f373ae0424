"""The README's local step-by-step sequence, line by line as written, on a fresh home:
each command exits 0 and the validation at its end passes (the session ingest took)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# Not run here: the shell's own line, and the dashboard (it serves until Ctrl-C; its own
# tests run it).
SKIPPED = ("source ", "stockpipe dashboard")


def readme_sequence() -> list[list[str]]:
    block = (ROOT / "README.md").read_text().split("### Step by step, on this machine", 1)[1]
    lines = block.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    commands = [shlex.split(line.split("#", 1)[0]) for line in lines]
    return [c for c in commands if c and not " ".join(c).startswith(SKIPPED)]


def test_the_readme_sequence_runs_top_to_bottom_and_validates(tmp_path: Path) -> None:
    sequence = readme_sequence()
    assert [c[1] for c in sequence] == [
        "kafka",
        "warehouse",
        "backfill",
        "ingest",
        "drain",
        "trends",
        "validate",
    ]
    home, port, controller = tmp_path / "home", free_port(), free_port()
    env = {
        **os.environ,
        "STOCKPIPE_HOME": str(home),
        "STOCKPIPE_LOCAL_KAFKA__PORT": str(port),
        "STOCKPIPE_LOCAL_KAFKA__CONTROLLER_PORT": str(controller),
        "STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT": "0",
        "STOCKPIPE_SOURCE__WATCHLIST": "AAPL,MSFT,NVDA",
    }
    try:
        for command in sequence:
            assert command[0] == "stockpipe"
            done = subprocess.run(
                [sys.executable, "-m", "stockpipe.cli", *command[1:]],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"
        assert "expectations passed" in done.stdout and "FAIL" not in done.stdout
    finally:
        LocalBroker(home / "kafka", port=port, controller_port=controller).stop()
