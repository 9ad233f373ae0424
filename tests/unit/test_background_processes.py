"""Stopping a background server another process started: once it has exited it no longer
counts as running, though its parent has not reaped it yet."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stockpipe.local_stack.processes import alive, process_state, running_pid, stop_background

# A parent that starts a server and never reaps it (as a test worker busy with other tests).
PARENT = (
    "import subprocess, sys, time\n"
    "server = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(server.pid, flush=True)\n"
    "time.sleep(600)\n"
)


# A zombie taken for a running server made stop_background wait forever: fail instead.
@pytest.mark.timeout(120)
def test_a_server_stopped_by_another_process_is_not_running_while_unreaped(tmp_path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        server = int(parent.stdout.readline())
        pid_file = tmp_path / "server.pid"
        pid_file.write_text(f"{server}\n")
        assert alive(server) and running_pid(pid_file) == server

        assert stop_background(pid_file, timeout=60)
        assert process_state(server) == "Z"  # exited; its parent has not reaped it
        assert not alive(server)
        assert running_pid(pid_file) is None
    finally:
        parent.kill()
        parent.wait()
