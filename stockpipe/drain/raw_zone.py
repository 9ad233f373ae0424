"""The raw zone: every loaded batch as an immutable Parquet file, written before the commit.

Layout (one file per topic partition and offset range, never rewritten)::

    <prefix>/<topic>/date=YYYY-MM-DD/<topic>-p<partition>-<first offset>-<last offset>.parquet

``date`` is the UTC date of the file's first bar. Names come from the data, so a re-run
of the same offsets names the same file. A drain that crashed after writing a file but
before its commit re-reads those offsets; the zone remembers which offsets each partition
already has on file and writes only what lies beyond, so the zone never holds a second
copy of a message, whatever the batch boundaries of the re-run.

Stores: a local directory (the default), or S3 through prefect-aws's ``S3Bucket`` block.
:func:`backfill` loads the files back into RAW (a rebuild, or history the warehouse lost)
through the drain's own staging and merge: no duplicates, the later fetch wins.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stockpipe.drain.loader import merge_rows
from stockpipe.object_store import LocalStore, ObjectStore, S3Store, s3_bucket
from stockpipe.settings import Settings
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.raw_schema import RAW_ARROW_SCHEMA

log = logging.getLogger(__name__)
_DAY = re.compile(r"/date=(?P<day>\d{4}-\d{2}-\d{2})/")
_FILE = re.compile(
    r"(?P<topic>[^/]+)-p(?P<partition>\d+)-(?P<first>\d{20})-(?P<last>\d{20})\.parquet$"
)


def file_key(prefix: str, topic: str, partition: int, first: int, last: int, day: str) -> str:
    return f"{prefix}/{topic}/date={day}/{topic}-p{partition:03d}-{first:020d}-{last:020d}.parquet"


class RawZone:
    """Writes the accepted rows of each batch to the store, once per offset."""

    def __init__(self, store: ObjectStore, prefix: str = "raw"):
        self.store = store
        self.prefix = prefix.strip("/")
        self._covered: dict[tuple[str, int], int] | None = None

    def covered_until(self, topic: str, partition: int) -> int:
        """The last offset of ``topic``/``partition`` already on file (-1 when none)."""
        if self._covered is None:
            self._covered = {}
            for key in self.store.keys(f"{self.prefix}/"):
                match = _FILE.search(key)
                if match:
                    tp = (match["topic"], int(match["partition"]))
                    self._covered[tp] = max(self._covered.get(tp, -1), int(match["last"]))
        return self._covered.get((topic, partition), -1)

    def write_batch(self, rows: pa.Table) -> list[str]:
        """Write ``rows`` (the drain's warehouse rows) as one file per partition.

        Returns:
            the locations written (empty when every offset was already on file).
        """
        written: list[str] = []
        if not rows.num_rows:
            return written
        partitions = rows.select(["KAFKA_TOPIC", "KAFKA_PARTITION"]).group_by(
            ["KAFKA_TOPIC", "KAFKA_PARTITION"]
        )
        for key in sorted(partitions.aggregate([]).to_pylist(), key=lambda k: tuple(k.values())):
            topic, partition = key["KAFKA_TOPIC"], int(key["KAFKA_PARTITION"])
            mask = pc.and_(
                pc.and_(
                    pc.equal(rows["KAFKA_TOPIC"], topic),
                    pc.equal(rows["KAFKA_PARTITION"], partition),
                ),
                pc.greater(rows["KAFKA_OFFSET"], self.covered_until(topic, partition)),
            )
            part = rows.filter(mask)
            if not part.num_rows:
                continue
            part = part.sort_by("KAFKA_OFFSET")
            offsets = part["KAFKA_OFFSET"]
            first, last = offsets[0].as_py(), offsets[-1].as_py()
            day = part["TS"][0].as_py().strftime("%Y-%m-%d")
            key_name = file_key(self.prefix, topic, partition, first, last, day)
            buffer = io.BytesIO()
            pq.write_table(part, buffer, compression="zstd")
            written.append(self.store.put(key_name, buffer.getvalue()))
            assert self._covered is not None
            self._covered[(topic, partition)] = last
        return written

    def files(self, topic: str, since: date | None = None, until: date | None = None) -> list[str]:
        """The keys of ``topic``'s files whose ``date`` lies in ``since``..``until``, in
        partition and offset order."""
        found = []
        for key in self.store.keys(f"{self.prefix}/{topic}/"):
            day = _DAY.search(key)
            if not _FILE.search(key) or day is None:
                continue
            on = date.fromisoformat(day["day"])
            if (since is None or on >= since) and (until is None or on <= until):
                found.append(key)
        return sorted(found, key=lambda k: k.rsplit("/", 1)[-1])

    def read(self, key: str) -> pa.Table:
        """A file's rows, as the raw row schema."""
        table = pq.read_table(io.BytesIO(self.store.get(key)))
        return table.select(RAW_ARROW_SCHEMA.names).cast(RAW_ARROW_SCHEMA)


@dataclass
class ReloadReport:
    files: int = 0
    rows: int = 0
    inserted: int = 0
    replaced: int = 0

    def summary(self) -> str:
        return (
            f"reloaded {self.files} raw-zone files ({self.rows} rows): {self.inserted} new "
            f"bars, {self.replaced} replaced by a later fetch, "
            f"{self.rows - self.inserted - self.replaced} already there"
        )


def reload(
    zone: RawZone,
    warehouse: Warehouse,
    topic: str,
    since: date | None = None,
    until: date | None = None,
    on_file: Callable[[str, ReloadReport], None] | None = None,
) -> ReloadReport:
    """Load the raw zone's files of ``topic`` into RAW.STOCK_PRICES, one transaction per file.

    Through the drain's staging and merge (:func:`stockpipe.drain.loader.merge_rows`): a bar
    already stored from the same or a later fetch stays as it is, so running it twice, or
    over files the drain already loaded, adds nothing. The warehouse's offsets are not
    touched: this is not a drain.
    """
    report = ReloadReport()
    for key in zone.files(topic, since, until):
        rows = zone.read(key)
        result = merge_rows(warehouse, rows)
        report.files += 1
        report.rows += rows.num_rows
        report.inserted += result.inserted
        report.replaced += result.replaced
        if on_file:
            on_file(key, report)
    return report


def raw_zone_from_settings(settings: Settings, enabled_only: bool = True) -> RawZone | None:
    """The raw zone the settings name, or None when it is off (the local default) and
    ``enabled_only``."""
    lake = settings.lake
    if enabled_only and not lake.enabled:
        return None
    if lake.s3_bucket_block:
        from prefect_aws.s3 import S3Bucket

        return RawZone(S3Store(S3Bucket.load(lake.s3_bucket_block)), lake.prefix)
    if lake.s3_bucket:
        return RawZone(S3Store(s3_bucket(settings, lake.s3_bucket)), lake.prefix)
    return RawZone(LocalStore(settings.lake_dir), lake.prefix)
