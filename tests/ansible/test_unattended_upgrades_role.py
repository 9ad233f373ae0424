"""The unattended_upgrades role run here: apt's own parser reads what it wrote as daily
security updates with a reboot between sessions, a bad time is refused before anything is
written, and a second run changes nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ansible.playbook import run_playbook
from tests.support import prerequisite

PLAYBOOK = str(Path(__file__).parent / "playbooks" / "unattended_upgrades_local.yml")

pytestmark = prerequisite(shutil.which("apt-config") is None, "apt-config (Debian's apt)")


def _args(conf_dir: Path, **more: object) -> list[str]:
    variables = {
        "unattended_upgrades_packages": [],
        "unattended_upgrades_apt_conf_dir": str(conf_dir),
    }
    return ["-e", json.dumps(variables | more)]


def _apt_sees(conf_dir: Path) -> str:
    """The configuration as apt reads it with the role's files on top of this machine's."""
    combined = conf_dir / "combined.conf"
    combined.write_text("".join(p.read_text() for p in sorted(conf_dir.iterdir()) if p != combined))
    done = subprocess.run(
        ["apt-config", "-c", str(combined), "dump"], capture_output=True, text=True, check=True
    )
    combined.unlink()
    return done.stdout


def test_daily_security_updates_with_a_reboot_between_sessions(tmp_path: Path) -> None:
    first = run_playbook(PLAYBOOK, *_args(tmp_path))
    assert first.returncode == 0, first.failures() or first.output[-3000:]

    seen = _apt_sees(tmp_path)
    assert 'APT::Periodic::Update-Package-Lists "1";' in seen
    assert 'APT::Periodic::Unattended-Upgrade "1";' in seen
    patterns = re.findall(r'Unattended-Upgrade::Origins-Pattern:: "([^"]+)";', seen)
    # Only the role's archives, whatever else this machine's apt configuration lists.
    assert patterns == [
        "origin=Debian,codename=${distro_codename},label=Debian",
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security",
    ]
    assert 'Unattended-Upgrade::Automatic-Reboot "true";' in seen
    assert 'Unattended-Upgrade::Automatic-Reboot-Time "04:30";' in seen

    again = run_playbook(PLAYBOOK, *_args(tmp_path))
    assert again.returncode == 0 and again.changed() == 0, again.changed_tasks()


@pytest.mark.parametrize("reboot_time", ["4:30am", "25:00"])
def test_a_reboot_time_that_is_not_hh_mm_is_refused_before_anything_is_written(
    tmp_path: Path, reboot_time: str
) -> None:
    run = run_playbook(PLAYBOOK, *_args(tmp_path, unattended_upgrades_reboot_time=reboot_time))
    assert run.returncode != 0
    assert "must be HH:MM" in " ".join(run.failures())
    assert list(tmp_path.iterdir()) == []
