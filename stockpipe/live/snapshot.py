"""The live tier's snapshot: what the dashboard reads of the live marts.

After each commit the live tier (:mod:`stockpipe.live.store`) reads its views into Parquet
files here, each replaced whole, then ``version.json``; the dashboard re-reads them only
when that version changed. Files, not the store: the store is the live process's own
(DuckDB allows one writer), and a read costs nothing.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from stockpipe.settings import Settings

# The views the live tier reads after each commit (sql/models/live), by snapshot file name.
VIEWS = {
    "latest_quote": "LIVE.LIVE_LATEST_QUOTE",
    "minute_bars": "LIVE.LIVE_MINUTE_BARS",
    "ma_crossings": "LIVE.LIVE_MA_CROSSINGS",
}


def snapshot_dir(settings: Settings) -> Path:
    """Where the live tier leaves what the dashboard reads (``settings``: the installation's)."""
    return settings.home_dir / "live" / "snapshot"


def write_frame(directory: Path, name: str, frame: pd.DataFrame) -> None:
    """``frame`` as ``<name>.parquet``, replaced whole (a reader sees the old file or the new)."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{name}.parquet.partial"
    frame.to_parquet(partial, index=False)
    os.replace(partial, directory / f"{name}.parquet")


def forming_version(directory: Path) -> int | None:
    """When the forming minute's file was last replaced (ns), None before the first: a
    reader keyed on it reads the file only when it changed."""
    try:
        return (directory / "forming.parquet").stat().st_mtime_ns
    except OSError:
        return None


def read_forming(directory: Path) -> pd.DataFrame:
    """The forming minute's newest bar per symbol (:mod:`stockpipe.live.forming`), or empty."""
    try:
        return pd.read_parquet(directory / "forming.parquet")
    except (OSError, ValueError):
        return pd.DataFrame()


def write_snapshot(directory: Path, frames: dict[str, pd.DataFrame]) -> None:
    """Each frame as ``<name>.parquet`` in ``directory``, each replaced whole (a reader sees
    the previous file or the new one), then ``version.json`` naming when."""
    for name, frame in frames.items():
        write_frame(directory, name, frame)
    version = directory / ".version.json.partial"
    version.write_text(json.dumps({"written_at": datetime.now(UTC).isoformat()}))
    os.replace(version, directory / "version.json")


def snapshot_version(directory: Path) -> str | None:
    """When the live snapshot was last written (ISO-8601, UTC); None before the first."""
    try:
        return json.loads((directory / "version.json").read_text())["written_at"]
    except (OSError, ValueError, KeyError):
        return None


def read_snapshot(directory: Path) -> tuple[str | None, dict[str, pd.DataFrame]]:
    """(its version, the frames) of the live snapshot; (None, {}) before the first."""
    version = snapshot_version(directory)
    if version is None:
        return None, {}
    frames = {}
    for name in VIEWS:
        try:
            frames[name] = pd.read_parquet(directory / f"{name}.parquet")
        except OSError:
            return None, {}
    return version, frames
