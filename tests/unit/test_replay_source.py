"""Replay of recorded bars from CSV and Parquet, with errors that name file and column."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from stockpipe.sources.replay import ReplayFileError, ReplaySource

CSV = """symbol,timestamp,open,high,low,close,volume
aapl,2025-11-26T14:30:00Z,100,101,99.5,100.5,1000
AAPL,2025-11-26T14:31:00Z,100.5,101.2,100.1,101.0,800
MSFT,2025-11-26 14:30:00,400,401,399,400.5,500
"""


def test_csv_is_read_normalised_and_filtered(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(CSV)
    source = ReplaySource(path)
    bars = source.fetch(
        ["AAPL"], datetime(2025, 11, 26, 14, 30, tzinfo=UTC), datetime(2025, 11, 26, 15, tzinfo=UTC)
    )
    assert bars["symbol"].tolist() == ["AAPL", "AAPL"]
    assert bars["ts"].iloc[0] == pd.Timestamp("2025-11-26 14:30", tz="UTC")
    assert bars["close"].tolist() == [100.5, 101.0]
    everything = source.fetch(["AAPL", "MSFT"], datetime(2025, 1, 1, tzinfo=UTC), datetime.now(UTC))
    assert len(everything) == 3
    assert everything.loc[2, "ts"].tzinfo is not None  # naive time taken as UTC


def test_parquet_and_directories(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    frame = pd.read_csv(tmp_path / "a.csv").rename(columns={"timestamp": "ts"})
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="mixed")
    frame["symbol"] = "NVDA"
    frame.to_parquet(tmp_path / "b.parquet")
    bars = ReplaySource(tmp_path).load()
    assert sorted(bars["symbol"].unique()) == ["AAPL", "MSFT", "NVDA"]
    assert len(bars) == 6


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "no_volume.csv"
    path.write_text("symbol,timestamp,open,high,low,close\nAAPL,2025-11-26T14:30:00Z,1,1,1,1\n")
    with pytest.raises(ReplayFileError, match=r"no_volume\.csv: missing column\(s\) volume"):
        ReplaySource(path).load()


def test_malformed_value_names_column_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(CSV.replace("100.5,101.2", "100.5,oops"))
    with pytest.raises(ReplayFileError, match=r"bad\.csv: column 'high'.*'oops' at line 3"):
        ReplaySource(path).load()
    path.write_text(CSV.replace("2025-11-26T14:31:00Z", "yesterday-ish"))
    with pytest.raises(ReplayFileError, match=r"column 'timestamp'.*line 3"):
        ReplaySource(path).load()


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match="no such file"):
        ReplaySource(tmp_path / "nope.csv").load()
    with pytest.raises(ReplayFileError, match=r"no \.csv or \.parquet"):
        ReplaySource(tmp_path).load()
