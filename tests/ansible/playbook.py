"""Run the project's playbooks from tests, the way a user runs them (cd ansible)."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
BIN = Path(sys.executable).parent
# The modules' compiled module_utils, kept between their runs (module_bytecode/sitecustomize.py).
MODULE_BYTECODE = {
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).parent / "module_bytecode"), os.environ.get("PYTHONPATH")])
    ),
    "STOCKPIPE_TEST_MODULE_BYTECODE": str(
        Path("~/.cache/stockpipe/test-module-bytecode").expanduser()
    ),
}


@dataclass
class PlaybookRun:
    returncode: int
    stats: dict[str, dict[str, int]]
    output: str
    tasks: list[dict]

    def changed(self, host: str = "localhost") -> int:
        return self.stats.get(host, {}).get("changed", 0)

    def failures(self) -> list[str]:
        messages = []
        for task in self.tasks:
            for host, result in task.get("hosts", {}).items():
                if result.get("failed") or result.get("unreachable"):
                    messages.append(f"{task['task']['name']} on {host}: {result.get('msg')}")
        return messages

    def changed_tasks(self) -> list[str]:
        return [
            task["task"]["name"]
            for task in self.tasks
            if any(r.get("changed") for r in task.get("hosts", {}).values())
        ]


def run_playbook(
    playbook: str, *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> PlaybookRun:
    """ansible-playbook with the JSON callback; returns per-host stats and task results."""
    full_env = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **MODULE_BYTECODE,
        **(env or {}),
    }
    process = subprocess.run(
        [str(BIN / "ansible-playbook"), playbook, *args],
        cwd=ANSIBLE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    stdout = process.stdout
    try:
        # raw_decode: a notification callback (profile_tasks) may print after the report.
        report, _ = json.JSONDecoder().raw_decode(stdout[stdout.index("{") :])
    except ValueError:
        report = {}
    tasks = [task for play in report.get("plays", []) for task in play.get("tasks", [])]
    return PlaybookRun(process.returncode, report.get("stats", {}), stdout + process.stderr, tasks)


def unit_exposure(unit: Path) -> float:
    """systemd's own score of a unit's sandbox (``systemd-analyze security``, offline): 0 is
    locked down, 10 wide open; a unit with only ProtectSystem=full and PrivateTmp scores
    about 9. The tests start units' commands without systemd, so this is how the sandbox
    itself is checked."""
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    return float(found.group(1))


@dataclass
class UnitCommand:
    """What systemd would run for a rendered unit: ExecStart as User= in WorkingDirectory=
    with the environment of EnvironmentFile= and Environment= (there is no systemd here)."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    user: str | None
    group: str | None

    @classmethod
    def of(cls, unit: Path) -> UnitCommand:
        service: dict[str, list[str]] = {}
        for line in unit.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                service.setdefault(key.strip(), []).append(value.strip())
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        for env_file in service.get("EnvironmentFile", []):
            for line in Path(env_file.lstrip("-")).read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    key, value = line.split("=", 1)
                    env[key.strip()] = value.strip()
        for assignment in service.get("Environment", []):
            for pair in shlex.split(assignment):
                key, value = pair.split("=", 1)
                env[key] = value
        user = service.get("User", [None])[-1]
        if user:
            entry = pwd.getpwnam(user)
            env |= {"USER": user, "LOGNAME": user, "HOME": entry.pw_dir}
        return cls(
            argv=shlex.split(service["ExecStart"][-1]),
            env=env,
            cwd=service.get("WorkingDirectory", [None])[-1],
            user=user,
            group=service.get("Group", [None])[-1],
        )

    def start(self, log: Path) -> subprocess.Popen:
        with log.open("wb") as out:
            return subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                group=self.group,
                extra_groups=[] if self.user else None,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
