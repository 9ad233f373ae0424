"""Every playbook passes --syntax-check, and everything under ansible/ passes ansible-lint's
production profile (the configuration is ansible/.ansible-lint)."""

from __future__ import annotations

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
