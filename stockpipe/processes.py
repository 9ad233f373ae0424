"""Processes: background servers with pid files (the local broker, Prometheus, Pushgateway),
and the allocator setting of a process that drains."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


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
    return True


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for the threads this process starts from now on.

    glibc gives each thread that allocates its own arena (up to 8 per core), and an arena
    keeps its freed memory. A drain's threads (librdkafka's, DuckDB's) free in one arena
    what another allocated, so resident memory creeps up batch after batch; two arenas
    keep the drain's peak lower at the same throughput (README, "Why the tuned settings
    are what they are"). Equivalent
    to ``MALLOC_ARENA_MAX=2`` in the environment, which systemd units may set instead.

    Returns:
        False where the C library is not glibc (nothing to do there).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (a service manager, Prefect cancelling a run, ``kill``).

    A KeyboardInterrupt, so that it unwinds like Ctrl-C: open transactions roll back, the
    consumer leaves its group, and no ``except Exception`` on the way swallows it.
    """


def raise_on_sigterm() -> Any:
    """From now on SIGTERM raises :class:`Terminated` in the main thread; returns the
    handler it replaced (to put back with ``signal.signal``)."""

    def _terminated(signum: int, frame: object) -> None:
        _signals_received.add(signal.SIGTERM)
        raise Terminated

    return signal.signal(signal.SIGTERM, _terminated)


_signals_received: set[int] = set()


def as_interrupt(error: BaseException) -> KeyboardInterrupt | None:
    """The signal behind ``error`` when it is DuckDB's "Query interrupted" (DuckDB turns a
    signal that arrives during a query into its own error), else None."""
    if isinstance(error, KeyboardInterrupt):
        return error
    if type(error).__name__ == "InterruptException" or str(error).startswith("Query interrupted"):
        return Terminated() if signal.SIGTERM in _signals_received else KeyboardInterrupt()
    return None
