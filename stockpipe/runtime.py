"""How a pipeline process runs: SIGTERM as an interrupt that unwinds like Ctrl-C, DuckDB's
interrupted query seen as the signal behind it, and the memory settings of a process that
drains."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.abc
import re
import signal
import sys
from typing import Any

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


def keep_pandas_out_of_arrow() -> bool:
    """Have pyarrow treat this process as one without pandas, unless pandas is loaded already.

    pyarrow looks for pandas the first time it turns Python values into Arrow (``pa.array``,
    ``pa.scalar``) and imports it when installed, a good part of a drain's memory in a
    process that never makes a DataFrame (README, "Why the tuned settings are what they
    are"). It looks once;
    with pandas hidden while it does, it does not look again, and ``to_pandas()`` still
    imports pandas if something calls it. Call before anything converts Python values.

    Returns:
        False where pandas was already loaded (nothing to do).
    """
    if "pandas" in sys.modules:
        return False
    import pyarrow as pa

    hidden = _PandasHidden()
    sys.meta_path.insert(0, hidden)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(hidden)
    return True


class _PandasHidden(importlib.abc.MetaPathFinder):
    """An import of pandas fails while this finder is first on ``sys.meta_path``."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname == "pandas":
            raise ModuleNotFoundError("pandas is hidden from pyarrow here", name=fullname)


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
    """The signal behind ``error``, else None.

    DuckDB turns a signal that arrives during a query into its own error: "Query
    interrupted", or, when the signal's exception was raised in Python code DuckDB was
    calling (reading a registered Arrow batch), an error whose message names it
    ("... failed: Terminated: ").
    """
    if isinstance(error, KeyboardInterrupt):
        return error
    message = str(error)
    if (
        type(error).__name__ == "InterruptException"
        or message.startswith("Query interrupted")
        or re.search(r"failed: (Terminated|KeyboardInterrupt)\b", message)
    ):
        return Terminated() if signal.SIGTERM in _signals_received else KeyboardInterrupt()
    return None
