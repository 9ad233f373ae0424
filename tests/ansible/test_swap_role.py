"""The swap role run for real here: the swap file is active, registered for boot, the
kernel's swappiness is set, and a second run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.ansible.playbook import run_playbook
from tests.support import missing_prerequisite, prerequisite

PLAYBOOK = str(Path(__file__).parent / "playbooks" / "swap_local.yml")
SWAPPINESS = Path("/proc/sys/vm/swappiness")

pytestmark = prerequisite(os.geteuid() != 0, "swapon needs root")


def active_swap() -> list[str]:
    result = subprocess.run(
        ["swapon", "--show=NAME", "--noheadings"], capture_output=True, text=True, check=False
    )
    return result.stdout.split()


@pytest.fixture
def swap_target(tmp_path: Path):
    swappiness = SWAPPINESS.read_text().strip()
    (tmp_path / "fstab").write_text("# test fstab\n")
    variables = {
        "swap_file_path": str(tmp_path / "swapfile"),
        "swap_file_size_mb": 256,
        "swap_swappiness": 10,
        "swap_fstab": str(tmp_path / "fstab"),
        "swap_sysctl_file": str(tmp_path / "60-swap.conf"),
    }
    yield tmp_path, ["-e", json.dumps(variables)]
    subprocess.run(["swapoff", str(tmp_path / "swapfile")], check=False, capture_output=True)
    SWAPPINESS.write_text(swappiness + "\n")


def test_the_swap_file_is_active_registered_and_a_second_run_changes_nothing(swap_target):
    root, args = swap_target
    try:
        probe = subprocess.run(["swapon", "--version"], capture_output=True, check=False)
    except FileNotFoundError:
        missing_prerequisite("swapon is not installed")
    assert probe.returncode == 0

    first = run_playbook(PLAYBOOK, *args)

    assert first.returncode == 0, first.failures() or first.output[-3000:]
    swapfile = root / "swapfile"
    assert str(swapfile) in active_swap()
    assert swapfile.stat().st_size == 256 * 1024 * 1024
    assert swapfile.stat().st_mode & 0o777 == 0o600
    assert f"{swapfile} none swap sw 0 0" in (root / "fstab").read_text()
    assert SWAPPINESS.read_text().strip() == "10"
    assert "vm.swappiness=10" in (root / "60-swap.conf").read_text()

    again = run_playbook(PLAYBOOK, *args)
    assert again.returncode == 0, again.failures()
    assert again.changed() == 0, again.changed_tasks()
