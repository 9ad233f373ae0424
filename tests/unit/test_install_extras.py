"""What an install without an extra does: the VM installs the core alone (uv.lock, the
prefect_worker role), so the embedded warehouse's fakesnow is absent there."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter in which fakesnow cannot be imported, as in the VM's virtualenv.
_WITHOUT_FAKESNOW = """
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name == "fakesnow" or name.startswith("fakesnow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Absent())
from stockpipe.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_embedded_warehouse_without_its_extra_is_a_configuration_error_naming_the_fix(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "STOCKPIPE_HOME": str(tmp_path),
        "STOCKPIPE_WAREHOUSE__BACKEND": "embedded",
    }
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FAKESNOW, "warehouse", "setup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "STOCKPIPE_WAREHOUSE__BACKEND=embedded" in message
    assert "pip install 'stockpipe[embedded]'" in message
    assert "STOCKPIPE_WAREHOUSE__BACKEND=snowflake" in message


def test_the_vm_core_leaves_out_what_only_a_laptop_or_the_control_machine_runs() -> None:
    """The core is what the VM installs; Ansible, the Compute client and fakesnow are extras,
    and the lock holds them all (uv sync --locked fails on a stale lock)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(requirement) for requirement in project["dependencies"]}
    assert not core & {"ansible", "google-cloud-compute", "fakesnow", "streamlit-", "pytest"}
    assert {"prefect", "confluent-kafka", "dbt-snowflake", "streamlit"} <= core
    extras = project["optional-dependencies"]
    assert {_name(r) for r in extras["control"]} == {"ansible", "google-cloud-compute"}
    assert {_name(r) for r in extras["embedded"]} == {"fakesnow"}
    locked = tomllib.loads((ROOT / "uv.lock").read_text())
    names = {package["name"] for package in locked["package"]}
    assert {"ansible", "google-cloud-compute", "fakesnow", "prefect"} <= names


def _name(requirement: str) -> str:
    for separator in "[<>=!~; ":
        requirement = requirement.split(separator)[0]
    return requirement.lower()
