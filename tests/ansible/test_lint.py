"""Every playbook passes --syntax-check, and everything under ansible/ passes ansible-lint's
production profile (the configuration is ansible/.ansible-lint)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.ansible.playbook import ANSIBLE_DIR, BIN

PLAYBOOKS = ["provision.yml", "site.yml", "teardown.yml"]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook):
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", playbook],
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile():
    result = subprocess.run(
        [str(BIN / "ansible-lint"), "--nocolor", "-f", "pep8"],
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


@pytest.mark.parametrize("module", ["address", "firewall", "instance", "service_account"])
def test_module_documentation_parses_with_its_fragment(module):
    """ansible-doc reads each stockpipe.gcp module's docs: every option is a proper entry."""
    result = subprocess.run(
        [
            str(
                BIN / "ansible-doc",
            ),
            "--json",
            f"stockpipe.gcp.{module}",
        ],
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)[f"stockpipe.gcp.{module}"]["doc"]["options"]
    assert {"project", "credentials_file", "api_endpoint", "state"} <= set(options)
    known = {"description", "type", "required", "default", "choices", "elements", "no_log"}
    assert {name: set(spec) - known for name, spec in options.items() if set(spec) - known} == {}
