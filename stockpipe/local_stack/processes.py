"""Background servers with pid files (the local broker, Prometheus, the Pushgateway, the node
exporter) and the ports they take."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        # Reap it if it is our child, so a zombie does not count as alive.
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Z: exited, not yet reaped by its parent, which is another process (a broker that one
    # process started and another stops: the tests' shared broker).
    return process_state(pid) != "Z"


def process_state(pid: int) -> str | None:
    """The state letter /proc gives ``pid`` (``S`` sleeping, ``T`` stopped by a signal, ``Z``
    exited and not reaped); None when it is gone or there is no /proc (macOS)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def running_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process still runs."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) else None


def start_background(
    command: list[str], log_file: Path, pid_file: Path, cwd: Path
) -> subprocess.Popen:
    """Start ``command`` detached from this terminal, output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process


def stop_background(pid_file: Path, timeout: float = 30.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; False when it was not running."""
    pid = running_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    kill_background(pid_file)
    return True


def kill_background(pid_file: Path) -> bool:
    """SIGKILL at once, as a crashed machine, and wait until it is gone; False when it was
    not running."""
    pid = running_pid(pid_file)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return pid is not None


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10000
_handed_out: set[int] = set()


def _ephemeral_ports() -> range:
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A loopback port nothing listens on, for a server started a little later.

    The port comes from below the kernel's ephemeral range: a port the kernel picked with
    bind(0) is one it may also give, before our server binds it, to any outgoing connection
    as its source port (a starting broker's own connections to its peers took one of a
    three-node cluster's listener ports that way). No port is handed out twice by one process.
    """
    highest = _ephemeral_ports().start - 1
    if highest < _LOWEST_PORT:  # an unusual kernel setting: let the kernel choose
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    for _attempt in range(1000):
        port = random.randint(_LOWEST_PORT, highest)  # noqa: S311 - spreading, not secrecy
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {_LOWEST_PORT}-{highest}")
