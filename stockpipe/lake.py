"""The raw zone: every loaded batch as an immutable Parquet file, written before the commit.

Layout (one file per topic partition and offset range, never rewritten)::

    <prefix>/<topic>/date=YYYY-MM-DD/<topic>-p<partition>-<first offset>-<last offset>.parquet

``date`` is the UTC date of the file's first bar. Names come from the data, so a re-run
of the same offsets names the same file. A drain that crashed after writing a file but
before its commit re-reads those offsets; the zone remembers which offsets each partition
already has on file and writes only what lies beyond, so the zone never holds a second
copy of a message, whatever the batch boundaries of the re-run.

Stores: a local directory (the default), or S3 through prefect-aws's ``S3Bucket`` block.
On Snowflake the files load with ``COPY INTO`` from an external stage (see README).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Protocol

import pandas as pd

from stockpipe.settings import Settings

log = logging.getLogger(__name__)
_FILE = re.compile(
    r"(?P<topic>[^/]+)-p(?P<partition>\d+)-(?P<first>\d{20})-(?P<last>\d{20})\.parquet$"
)


class ObjectStore(Protocol):
    """Where raw files go: put whole objects, list them by prefix."""

    def put(self, key: str, data: bytes) -> str: ...

    def keys(self, prefix: str) -> list[str]: ...


class LocalStore:
    """A directory on this machine."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def put(self, key: str, data: bytes) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a file
        return str(path)

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return [str(p.relative_to(self.root)) for p in base.rglob("*.parquet")]


class S3Store:
    """An S3 bucket through prefect-aws's ``S3Bucket`` (credentials from the block)."""

    def __init__(self, bucket) -> None:
        self.bucket = bucket

    def put(self, key: str, data: bytes) -> str:
        self.bucket.write_path(key, data)
        return f"s3://{self.bucket.bucket_name}/{key}"

    def keys(self, prefix: str) -> list[str]:
        return [obj["Key"] for obj in self.bucket.list_objects(folder=prefix)]


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

    def write_batch(self, rows: pd.DataFrame) -> list[str]:
        """Write ``rows`` (the drain's warehouse rows) as one file per partition.

        Returns:
            the locations written (empty when every offset was already on file).
        """
        written = []
        if not len(rows):
            return written
        for (topic, partition), part in rows.groupby(["KAFKA_TOPIC", "KAFKA_PARTITION"], sort=True):
            part = part[part["KAFKA_OFFSET"] > self.covered_until(topic, int(partition))]
            if part.empty:
                continue
            part = part.sort_values("KAFKA_OFFSET")
            first, last = int(part["KAFKA_OFFSET"].iloc[0]), int(part["KAFKA_OFFSET"].iloc[-1])
            day = pd.Timestamp(part["TS"].iloc[0]).strftime("%Y-%m-%d")
            key = file_key(self.prefix, topic, int(partition), first, last, day)
            buffer = io.BytesIO()
            part.to_parquet(buffer, index=False, compression="zstd")
            written.append(self.store.put(key, buffer.getvalue()))
            assert self._covered is not None
            self._covered[(topic, int(partition))] = last
        return written


def raw_zone_from_settings(settings: Settings) -> RawZone | None:
    """The raw zone the settings ask for, or None when it is off (the local default)."""
    lake = settings.lake
    if not lake.enabled:
        return None
    if lake.s3_bucket_block:
        from prefect_aws.s3 import S3Bucket

        return RawZone(S3Store(S3Bucket.load(lake.s3_bucket_block)), lake.prefix)
    if lake.s3_bucket:
        return RawZone(S3Store(s3_bucket(settings, lake.s3_bucket)), lake.prefix)
    return RawZone(LocalStore(settings.lake_dir), lake.prefix)


def s3_bucket(settings: Settings, name: str):
    """A prefect-aws S3Bucket for ``name`` with the lake's region and endpoint; credentials
    from the usual AWS chain."""
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters
    from prefect_aws.s3 import S3Bucket

    credentials = AwsCredentials(
        region_name=settings.lake.s3_region,
        aws_client_parameters=AwsClientParameters(endpoint_url=settings.lake.s3_endpoint_url),
    )
    return S3Bucket(bucket_name=name, credentials=credentials)
