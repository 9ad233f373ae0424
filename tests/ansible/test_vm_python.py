"""What the VM installs runs on Debian 13's Python (3.13), not only on the 3.11 of the laptop
and CI: the prefect_worker role makes the flows' virtualenv from the host's python3, and
`uv sync --locked --no-build --no-install-project` takes every dependency from a wheel
uv.lock names for it (the code runs from its directory, as on the VM).

Here the same sync runs with a Python 3.13 found on this machine, and the virtualenv it
makes imports what each flow run imports and answers `stockpipe config`. Where the machine
has no Python 3.13 (Debian 12 packages none, and uv cannot download one offline) the test
is skipped saying so, under CI too: nothing the project's set-up can install provides one.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ansible.playbook import ANSIBLE_DIR

REPO = ANSIBLE_DIR.parent
# What the worker and each flow run import (deployments/worker.py, flows/*.py), and the tools
# the trends and validation flows drive.
IMPORTS = (
    "import sys, deployments.worker, deployments.flow_run, flows.ingest, flows.drain, "
    "flows.trends, flows.validate, dbt.cli.main, great_expectations, snowflake.connector, "
    "confluent_kafka, duckdb, fakesnow; print(sys.version_info[:2])"
)

pytestmark = pytest.mark.e2e


def _python_313() -> str | None:
    """A working Python 3.13 interpreter of this machine, if it has one."""
    candidates = [
        *sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.13*/bin/python3.13"))),
        shutil.which("python3.13"),
    ]
    for candidate in filter(None, candidates):
        answer = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if answer.returncode == 0 and answer.stdout.strip() == "(3, 13)":
            return candidate
    return None


def test_the_vms_install_runs_on_debian_13s_python(tmp_path: Path) -> None:
    python = _python_313()
    if python is None:
        pytest.skip("no Python 3.13 on this machine (the VM's Debian 13 interpreter)")
    venv = tmp_path / "venv"
    sync = subprocess.run(
        [
            str(Path(sys.executable).parent / "uv"),
            "sync",
            "--quiet",
            "--locked",
            "--no-build",
            "--no-install-project",
            "--python",
            python,
        ],
        cwd=REPO,
        env=os.environ | {"UV_PROJECT_ENVIRONMENT": str(venv)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert sync.returncode == 0, sync.stderr[-3000:]

    imported = subprocess.run(
        [str(venv / "bin/python"), "-c", IMPORTS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip() == "(3, 13)"
    config = subprocess.run(
        [str(venv / "bin/python"), "-m", "stockpipe.cli", "config"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "STOCKPIPE_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert config.returncode == 0, config.stderr[-3000:]
    assert "warehouse" in config.stdout
