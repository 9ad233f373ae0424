"""Object storage for files the pipeline writes: a local directory or an S3 bucket.

S3 goes through prefect-aws's ``S3Bucket`` block, so credentials come from a saved block or
the usual AWS chain, never from stockpipe's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from stockpipe.settings import Settings


class ObjectStore(Protocol):
    """Where raw files go: put whole objects, read them back, list them by prefix."""

    def put(self, key: str, data: bytes) -> str: ...

    def get(self, key: str) -> bytes: ...

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

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

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

    def get(self, key: str) -> bytes:
        return self.bucket.read_path(key)

    def keys(self, prefix: str) -> list[str]:
        return [obj["Key"] for obj in self.bucket.list_objects(folder=prefix)]


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
