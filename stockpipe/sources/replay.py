"""Replay recorded bars from CSV or Parquet files.

A file has one row per bar with the columns ``symbol``, ``timestamp`` (or ``ts``), ``open``,
``high``, ``low``, ``close`` and ``volume``, and optionally ``interval`` (``1m`` or ``1d``).
Timestamps without a zone are taken as UTC. Without an ``interval`` column, a file whose
timestamps are all dates (midnight) holds daily bars, any other file 1-minute bars. A daily
bar's timestamp names its session (the date as written, or the New York date of a time);
it is served with ``ts`` at that session's open, like every source's daily bars.
A directory is read file by file (``*.csv``, ``*.parquet``) in name order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from stockpipe.quote_spec import BAR_FIELDS, EXCHANGE_TZ
from stockpipe.sources import (
    SOURCE_INTERVALS,
    HistoryLimit,
    Interval,
    daily_bar_ts,
    empty_bars,
)

NUMERIC_COLUMNS = ("open", "high", "low", "close", "volume")
SUFFIXES = (".csv", ".parquet", ".pq")


class ReplayFileError(ValueError):
    """A replay file is missing, unreadable, or lacks a column. Names the file and column."""


class ReplaySource:
    """Serves bars recorded in files, as if they were being fetched now."""

    name = "replay"

    def __init__(self, path: Path | str):
        """Raises ReplayFileError when ``path`` holds no replay file."""
        self.path = Path(path)
        self._bars: pd.DataFrame | None = None
        self.files()  # a wrong path fails at start, before anything else is done

    def files(self) -> list[Path]:
        if self.path.is_dir():
            found = sorted(p for p in self.path.iterdir() if p.suffix.lower() in SUFFIXES)
            if not found:
                raise ReplayFileError(f"{self.path}: no .csv or .parquet files in this directory")
            return found
        if not self.path.exists():
            raise ReplayFileError(f"{self.path}: no such file (STOCKPIPE_SOURCE__REPLAY_PATH)")
        if self.path.suffix.lower() not in SUFFIXES:
            raise ReplayFileError(f"{self.path}: not a .csv or .parquet file")
        return [self.path]

    def load(self) -> pd.DataFrame:
        """Every bar in the files with its ``interval``, validated for shape (not for the
        contract)."""
        if self._bars is None:
            frames = [read_bars_file(path) for path in self.files()]
            self._bars = (
                pd.concat(frames, ignore_index=True)
                if frames
                else empty_bars().assign(interval=pd.Series([], dtype="string"))
            )
        return self._bars

    def history_limit(self, interval: Interval) -> HistoryLimit:
        # Files in memory: windows bounded only to keep each publish batch's memory small.
        return HistoryLimit(days_per_request=7 if interval == "1m" else 366)

    def fetch(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: Interval = "1m"
    ) -> pd.DataFrame:
        bars = self.load()
        lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
        wanted = bars["symbol"].isin({s.upper() for s in symbols}) & (bars["interval"] == interval)
        in_range = (bars["ts"] >= lo) & (bars["ts"] < hi)
        return bars.loc[wanted & in_range, list(BAR_FIELDS)].reset_index(drop=True)


def read_bars_file(path: Path) -> pd.DataFrame:
    """Read one replay file into :data:`BAR_FIELDS`.

    Raises:
        ReplayFileError: naming the file, and the column and row where a value is malformed.
    """
    try:
        if path.suffix.lower() == ".csv":
            raw = pd.read_csv(path, dtype={"symbol": "string"})
        else:
            raw = pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ReplayFileError(f"{path}: cannot read: {exc}") from exc

    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if "ts" not in raw.columns and "timestamp" in raw.columns:
        raw = raw.rename(columns={"timestamp": "ts"})
    missing = [c for c in BAR_FIELDS if c not in raw.columns]
    if missing:
        shown = ["timestamp" if c == "ts" else c for c in missing]
        raise ReplayFileError(f"{path}: missing column(s) {', '.join(shown)}")

    bars = pd.DataFrame(index=raw.index)
    bars["symbol"] = raw["symbol"].astype("string").str.strip().str.upper()
    ts = pd.to_datetime(raw["ts"], errors="coerce", utc=True, format="mixed")
    _fail_on_unparsed(path, "timestamp", raw["ts"], ts)
    bars["ts"] = ts
    for column in NUMERIC_COLUMNS:
        values = pd.to_numeric(raw[column], errors="coerce")
        _fail_on_unparsed(path, column, raw[column], values)
        bars[column] = values
    bars["interval"] = _intervals(path, raw, ts)
    daily = bars["interval"] == "1d"
    if daily.any():
        opens = _session_opens(ts[daily]).set_axis(ts[daily].index)
        if opens.isna().any():
            row = int(opens.isna().idxmax())
            where = f"line {row + 2}" if path.suffix.lower() == ".csv" else f"row {row}"
            raise ReplayFileError(
                f"{path}: daily bar at {where} is dated {raw['ts'][row]!r}, not an NYSE session"
            )
        bars.loc[daily, "ts"] = opens
    return bars[[*BAR_FIELDS, "interval"]]


def _intervals(path: Path, raw: pd.DataFrame, ts: pd.Series) -> pd.Series:
    """Each row's interval: the ``interval`` column, or the file's kind from its timestamps."""
    if "interval" in raw.columns:
        intervals = raw["interval"].astype("string").str.strip()
        bad = ~intervals.isin(SOURCE_INTERVALS)
        if bad.any():
            row = int(bad.idxmax())
            where = f"line {row + 2}" if path.suffix.lower() == ".csv" else f"row {row}"
            raise ReplayFileError(
                f"{path}: column 'interval' has {raw['interval'][row]!r} at {where}; "
                f"expected one of {', '.join(SOURCE_INTERVALS)}"
            )
        return intervals
    all_dates = bool(len(ts)) and bool((ts == ts.dt.normalize()).all())
    return pd.Series("1d" if all_dates else "1m", index=raw.index, dtype="string")


def _session_opens(ts: pd.Series) -> pd.Series:
    """A daily bar's session open, from a date (midnight as written) or a New York time."""
    at_midnight = ts == ts.dt.normalize()
    days = ts.dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()
    days = days.where(~at_midnight, ts.dt.tz_localize(None))
    return daily_bar_ts(days)


def _fail_on_unparsed(path: Path, column: str, raw: pd.Series, parsed: pd.Series) -> None:
    bad = parsed.isna() & raw.notna()
    if bad.any():
        row = int(bad.idxmax())
        # +2: one for the header line, one because people count rows from 1.
        where = f"line {row + 2}" if path.suffix.lower() == ".csv" else f"row {row}"
        raise ReplayFileError(
            f"{path}: column {column!r} has a malformed value {raw[row]!r} at {where}"
        )
