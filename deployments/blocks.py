"""Create (or update) the Prefect blocks the deployments use, from the environment.

    .venv/bin/python -m deployments.blocks

Reads the same STOCKPIPE_* settings as everything else and saves, where configured:

* ``stockpipe-snowflake``: a prefect-snowflake SnowflakeConnector (with its
  SnowflakeCredentials ``stockpipe-snowflake-credentials``), when
  STOCKPIPE_WAREHOUSE__BACKEND=snowflake and a shared login (USER) is set;
* ``stockpipe-snowflake-loader`` / ``-transformer`` / ``-reader``: the same for each runtime
  role's own service user (STOCKPIPE_WAREHOUSE__LOADER_LOGIN__USER and __PRIVATE_KEY_FILE,
  and so on), the key held in the block;
* ``stockpipe-raw-zone``: a prefect-aws S3Bucket (credentials ``stockpipe-aws``), when
  STOCKPIPE_LAKE__S3_BUCKET is set;
* ``stockpipe-kafka-sasl-password``: a Secret, when SASL credentials are set;
* ``stockpipe-finnhub-api-key`` / ``stockpipe-alphavantage-api-key``: Secrets, when the
  provider's key is set (a worker then needs only
  ``STOCKPIPE_SOURCE__FINNHUB_API_KEY_BLOCK=stockpipe-finnhub-api-key``).

Idempotent (re-running overwrites with the same values). Prints block names and which
settings went in, never a secret's value.
"""

from __future__ import annotations

from pathlib import Path

from prefect.blocks.system import Secret
from pydantic import SecretStr

from stockpipe.settings import Settings, load_settings

SNOWFLAKE_CONNECTOR = "stockpipe-snowflake"
# Each runtime role's own service user: block name by role setting.
SNOWFLAKE_ROLE_CONNECTORS = {
    "loader_login": "stockpipe-snowflake-loader",
    "transformer_login": "stockpipe-snowflake-transformer",
    "reader_login": "stockpipe-snowflake-reader",
}
AWS_CREDENTIALS = "stockpipe-aws"
RAW_ZONE_BUCKET = "stockpipe-raw-zone"
KAFKA_SASL_PASSWORD = "stockpipe-kafka-sasl-password"  # noqa: S105 - a block name
PROVIDER_API_KEYS = {
    "finnhub": "stockpipe-finnhub-api-key",
    "alphavantage": "stockpipe-alphavantage-api-key",
}


def bootstrap_blocks(settings: Settings) -> dict[str, str]:
    """Save the blocks the settings call for; return block name -> what it holds."""
    saved: dict[str, str] = {}
    wh = settings.warehouse
    if wh.backend == "snowflake":
        if wh.user:
            saved[SNOWFLAKE_CONNECTOR] = _save_snowflake_login(
                settings, SNOWFLAKE_CONNECTOR, wh.user, wh.private_key_file, wh.password
            )
        for runtime in wh.service_logins().values():
            if runtime.login.user:
                block = SNOWFLAKE_ROLE_CONNECTORS[runtime.setting]
                saved[block] = _save_snowflake_login(
                    settings, block, runtime.login.user, runtime.login.private_key_file, None
                )
    lake = settings.lake
    if lake.s3_bucket:
        from prefect_aws import AwsCredentials
        from prefect_aws.client_parameters import AwsClientParameters
        from prefect_aws.s3 import S3Bucket

        aws = AwsCredentials(
            region_name=lake.s3_region,
            aws_client_parameters=AwsClientParameters(endpoint_url=lake.s3_endpoint_url),
        )
        aws.save(AWS_CREDENTIALS, overwrite=True)
        S3Bucket(bucket_name=lake.s3_bucket, credentials=aws).save(RAW_ZONE_BUCKET, overwrite=True)
        saved[RAW_ZONE_BUCKET] = f"s3://{lake.s3_bucket} (AWS credentials from the default chain)"
    kafka = settings.kafka
    if kafka.sasl_password is not None:
        Secret(value=kafka.sasl_password).save(KAFKA_SASL_PASSWORD, overwrite=True)
        saved[KAFKA_SASL_PASSWORD] = f"SASL password of {kafka.sasl_username} (hidden)"
    for provider, block in PROVIDER_API_KEYS.items():
        key = getattr(settings.source, f"{provider}_api_key")
        if key is not None and key.get_secret_value():
            Secret(value=key).save(block, overwrite=True)
            saved[block] = f"{provider} API key (hidden)"
    return saved


def _save_snowflake_login(
    settings: Settings, block: str, user: str, key_file: Path | None, password: SecretStr | None
) -> str:
    """Save a SnowflakeConnector ``block`` (credentials ``<block>-credentials``) for ``user``;
    return what it holds, secrets hidden."""
    from prefect_snowflake import SnowflakeConnector, SnowflakeCredentials

    wh = settings.warehouse
    # The key itself, not its path: the path is on this machine, and a worker elsewhere
    # (the VM) would have nothing to read, so it would need a password login instead.
    key = key_file.read_bytes() if key_file else None
    credentials = SnowflakeCredentials(
        account=wh.account, user=user, password=None if key else password, private_key=key
    )
    credentials.save(f"{block}-credentials", overwrite=True)
    SnowflakeConnector(
        credentials=credentials, database=wh.database, schema="RAW", warehouse=wh.warehouse
    ).save(block, overwrite=True)
    auth = f"key pair from {key_file}, held in the block" if key else "password"
    return f"account {wh.account}, user {user}, {auth} (hidden)"


def main() -> None:
    saved = bootstrap_blocks(load_settings())
    if not saved:
        print("nothing to save: the local profile needs no blocks")
    for name, what in saved.items():
        print(f"saved block {name}: {what}")


if __name__ == "__main__":
    main()
