"""The raw zone: Parquet per partition and offset range, locally and on S3 (a moto server
over real HTTP), written before the commit and never twice."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import boto3
import pandas as pd
import pytest

from stockpipe.drain import drain_prices
from stockpipe.settings import Settings, load_settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import distinct_bar_messages
from tests.support.exactly_once import FlakyConnection

pytestmark = pytest.mark.integration
NAME = re.compile(
    r"raw/(?P<topic>[^/]+)/date=(?P<day>\d{4}-\d{2}-\d{2})/"
    r"(?P=topic)-p(?P<p>\d{3})-(?P<first>\d{20})-(?P<last>\d{20})\.parquet$"
)


def offsets_on_file(frames: list[pd.DataFrame]) -> list[tuple[int, int]]:
    return sorted(
        (int(p), int(o))
        for f in frames
        for p, o in zip(f["KAFKA_PARTITION"], f["KAFKA_OFFSET"], strict=True)
    )


def test_batches_land_on_s3_once_even_when_a_commit_failed_after_the_write(
    env_settings: Settings, s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    QuoteProducer(env_settings.kafka).publish_raw(
        (k, v, None) for k, v in distinct_bar_messages(6_000)
    )
    monkeypatch.setenv("STOCKPIPE_DRAIN__LOAD_RETRIES", "0")
    settings = load_settings()
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings)
        real = warehouse.duck
        # The first commit fails after its files were written: a crash in the worst place.
        warehouse.duck = FlakyConnection(real, "insert into raw.stock_prices", times=1)
        with pytest.raises(FlakyConnection.ERRORS):
            drain_prices(settings, warehouse, max_records=4_000)
        warehouse.duck = real
        # The re-run cuts its batches differently; the zone must still hold each offset once.
        report = drain_prices(settings, warehouse, max_records=1_500)
        assert report.inserted == 6_000

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="stockpipe-raw")["Contents"]]
    assert keys and all(NAME.match(k) for k in keys), keys
    frames = [
        pd.read_parquet(io.BytesIO(s3.get_object(Bucket="stockpipe-raw", Key=k)["Body"].read()))
        for k in keys
    ]
    on_file = offsets_on_file(frames)
    assert len(on_file) == len(set(on_file)) == 6_000  # every message once, none twice
    for key, frame in zip(keys, frames, strict=True):
        match = NAME.match(key)
        assert int(match["first"]) == frame["KAFKA_OFFSET"].min()
        assert int(match["last"]) == frame["KAFKA_OFFSET"].max()
        assert (frame["KAFKA_PARTITION"] == int(match["p"])).all()
        assert match["day"] == pd.Timestamp(frame["TS"].iloc[0]).strftime("%Y-%m-%d")
    assert set(frames[0].columns) >= {"SYMBOL", "TS", "CLOSE", "KAFKA_OFFSET", "LOADED_AT"}


def test_local_raw_zone_is_off_by_default_and_a_directory_when_on(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    QuoteProducer(env_settings.kafka).publish_raw(
        (k, v, None) for k, v in distinct_bar_messages(500)
    )
    with Warehouse.connect(env_settings, "setup") as warehouse:
        setup_warehouse(warehouse, env_settings)
        assert drain_prices(env_settings, warehouse).raw_files == []
    assert not env_settings.lake_dir.exists()

    QuoteProducer(env_settings.kafka).publish_raw(
        (k, v, None) for k, v in distinct_bar_messages(500, start=500)
    )
    monkeypatch.setenv("STOCKPIPE_LAKE__ENABLED", "true")
    settings = load_settings()
    with Warehouse.connect(settings) as warehouse:
        written = drain_prices(settings, warehouse).raw_files
    assert written and all(NAME.search(w) for w in written)
    files = list(settings.lake_dir.rglob("*.parquet"))
    assert sum(len(pd.read_parquet(f)) for f in files) == 500


def test_backfill_from_the_raw_zone_rebuilds_raw_and_the_later_fetch_wins(
    env_settings: Settings, s3: boto3.client
) -> None:
    QuoteProducer(env_settings.kafka).publish_raw(
        (k, v, None) for k, v in distinct_bar_messages(1_000)
    )
    settings = load_settings()
    bars = "select symbol, ts, close, fetched_at from RAW.STOCK_PRICES order by symbol, ts"
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings)
        assert drain_prices(settings, warehouse).raw_files
        loaded = warehouse.query(bars)
        offsets = warehouse.query("select * from RAW.KAFKA_OFFSETS order by kafka_partition")
        # RAW loses half its rows; one bar was since re-fetched (later), one holds an
        # older fetch than its file.
        warehouse.execute("delete from RAW.STOCK_PRICES where kafka_offset % 2 = 0")
        newer, older = warehouse.query(
            "select symbol, ts from RAW.STOCK_PRICES order by symbol, ts limit 2"
        )
        warehouse.execute(
            "update RAW.STOCK_PRICES set close = 1.5, fetched_at = dateadd('day', 1, fetched_at) "
            "where symbol = %s and ts = %s",
            newer,
        )
        warehouse.execute(
            "update RAW.STOCK_PRICES set close = 2.5, fetched_at = dateadd('day', -1, fetched_at) "
            "where symbol = %s and ts = %s",
            older,
        )

    reloaded = subprocess.run(
        [sys.executable, "-m", "stockpipe.cli", "warehouse", "reload"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reloaded.returncode == 0, reloaded.stderr
    said = " ".join(reloaded.stdout.split())
    assert "(1000 rows): 500 new bars, 1 replaced by a later fetch, 499 already there" in said

    with Warehouse.connect(settings, "setup") as warehouse:
        rows = {(s, t): (c, f) for s, t, c, f in warehouse.query(bars)}
        assert len(rows) == len(loaded) == 1_000  # every bar back, none twice
        assert rows[tuple(newer)][0] == 1.5  # the later fetch stayed
        for symbol, ts, close, fetched_at in loaded:
            if (symbol, ts) != tuple(newer):
                assert rows[(symbol, ts)] == (close, fetched_at)  # the older one was replaced
        assert warehouse.query("select * from RAW.KAFKA_OFFSETS order by kafka_partition") == (
            offsets
        )
    again = subprocess.run(
        [sys.executable, "-m", "stockpipe.cli", "warehouse", "reload"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = " ".join(again.stdout.split())
    assert "0 new bars, 0 replaced by a later fetch, 1000 already there" in said
