"""Block bootstrap against a real Prefect API: idempotent, and secrets never printed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prefect.blocks.system import Secret
from prefect_aws.s3 import S3Bucket
from prefect_snowflake import SnowflakeConnector

from deployments import blocks

pytestmark = pytest.mark.e2e
PASSWORD = "never-print-me-7f3a"


def test_blocks_are_saved_twice_without_change_and_never_print_secrets(
    prefect_api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name, value in {
        "STOCKPIPE_WAREHOUSE__BACKEND": "snowflake",
        "STOCKPIPE_WAREHOUSE__ACCOUNT": "xy12345.eu-west-1",
        "STOCKPIPE_WAREHOUSE__USER": "STOCKPIPE_LOADER",
        "STOCKPIPE_WAREHOUSE__PASSWORD": PASSWORD,
        "STOCKPIPE_WAREHOUSE__WAREHOUSE": "LOAD_WH",
        "STOCKPIPE_LAKE__S3_BUCKET": "my-raw-zone",
        "STOCKPIPE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "STOCKPIPE_KAFKA__SASL_USERNAME": "drain",
        "STOCKPIPE_KAFKA__SASL_PASSWORD": PASSWORD + "-kafka",
        "STOCKPIPE_SOURCE__FINNHUB_API_KEY": PASSWORD + "-finnhub",
    }.items():
        monkeypatch.setenv(name, value)
    blocks.main()
    blocks.main()  # idempotent
    printed = capsys.readouterr().out
    assert printed.count("saved block stockpipe-snowflake:") == 2
    assert PASSWORD not in printed

    connector = SnowflakeConnector.load(blocks.SNOWFLAKE_CONNECTOR)
    assert connector.credentials.account == "xy12345.eu-west-1"
    assert connector.credentials.password.get_secret_value() == PASSWORD
    assert connector.warehouse == "LOAD_WH" and connector.database == "STOCKS"
    assert S3Bucket.load(blocks.RAW_ZONE_BUCKET).bucket_name == "my-raw-zone"
    assert Secret.load(blocks.KAFKA_SASL_PASSWORD).get() == PASSWORD + "-kafka"
    assert "saved block stockpipe-finnhub-api-key: finnhub API key (hidden)" in printed

    # A worker holds the block's name, not the key: the source reads the key from it.
    from stockpipe.settings import load_settings
    from stockpipe.sources import api_key

    monkeypatch.delenv("STOCKPIPE_SOURCE__FINNHUB_API_KEY")
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "finnhub")
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_API_KEY_BLOCK", "stockpipe-finnhub-api-key")
    assert api_key(load_settings().source, "finnhub") == PASSWORD + "-finnhub"


def test_local_profile_needs_no_blocks() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "deployments.blocks"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PREFECT_API_URL": ""},
        check=False,
    )
    assert "nothing to save" in out.stdout, out.stderr
