"""Benchmark scripts: each prints its figures (``python -m tests.benchmarks.<name>``)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
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
