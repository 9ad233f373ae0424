"""site.yml's checks that run before any role: on a host standing in for the VM (this
machine, over the local connection), with every role's tag left out (the roles' argument
checks still run, and fail without the VM's inventory: only the check is looked at)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.ansible.playbook import run_playbook


def _inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "stockpipe_vm": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_become": False,
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        )
    )
    return inventory


def test_site_refuses_to_run_where_the_grafana_role_would_print_its_password(tmp_path) -> None:
    """The grafana.grafana role turns its no_log off when CI is set on the control machine."""
    args = ["-i", str(_inventory(tmp_path)), "--tags", "no_role_has_this_tag"]
    with_ci = run_playbook("site.yml", *args, env={"CI": "true"})
    assert with_ci.returncode != 0
    assert "env -u CI ansible-playbook site.yml" in " ".join(with_ci.failures())
    without = run_playbook("site.yml", *args, env={**os.environ, "CI": ""})
    check = next(t for t in without.tasks if t["task"]["name"].startswith("Refuse to run with CI"))
    assert not check["hosts"]["localhost"].get("failed"), check["hosts"]["localhost"]
