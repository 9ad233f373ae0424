"""Run the project's playbooks from tests, the way a user runs them (cd ansible)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
BIN = Path(sys.executable).parent


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
        report = json.loads(stdout[stdout.index("{") :])
    except ValueError:
        report = {}
    tasks = [task for play in report.get("plays", []) for task in play.get("tasks", [])]
    return PlaybookRun(process.returncode, report.get("stats", {}), stdout + process.stderr, tasks)
