"""Benchmark scripts: each prints its figures (``python -m tests.benchmarks.<name>``)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A new temporary directory for a benchmark's broker and warehouse, removed when the
    script exits (they reach gigabytes); kept, with its path printed, when
    ``STOCKPIPE_BENCH_KEEP`` is set, to look into afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("STOCKPIPE_BENCH_KEEP"):
        atexit.register(lambda: print(f"kept {path}", file=sys.stderr))
    else:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# Appended to a child's code: it writes its own VmHWM (KB) at exit to the file named by
# BENCH_PEAK_FILE (not a STOCKPIPE_ name: the CLI warns of those, being no setting). Not
# getrusage's ru_maxrss of the child: Linux carries that over exec, so a child of a large
# parent reports the parent's size until it grows past it.
_PEAK_AT_EXIT = """
import atexit as _atexit, os as _os
def _write_peak(path=_os.environ["BENCH_PEAK_FILE"]):
    with open("/proc/self/status") as status, open(path, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
_atexit.register(_write_peak)
"""


def run_python_measured(
    code: str, *args: str, python: str = sys.executable, **run: object
) -> tuple[subprocess.CompletedProcess, float, float]:
    """Runs ``python -c code args`` in a process of its own.

    Args:
        code: the child's program; it may exit with any code.
        args: its ``sys.argv[1:]``.
        python: the interpreter (default: this one).
        run: passed to ``subprocess.run`` (stdout, stderr, check, ...).

    Returns:
        (the completed process, wall seconds, the child's peak resident memory in MB).
    """
    with tempfile.NamedTemporaryFile(prefix="stockpipe-bench-peak-") as peak_file:
        env = {**(run.pop("env", None) or os.environ), "BENCH_PEAK_FILE": peak_file.name}
        started = time.monotonic()
        done = subprocess.run([python, "-c", _PEAK_AT_EXIT + code, *args], env=env, **run)
        seconds = time.monotonic() - started
        peak_kb = int(Path(peak_file.name).read_text() or 0)
    return done, seconds, peak_kb / 1024
