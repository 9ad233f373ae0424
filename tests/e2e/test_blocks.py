"""Block bootstrap against a real Prefect API: idempotent, and secrets never printed; the
drain flow connecting to Snowflake through the saved connector block, as the VM's worker
does (the real connector over HTTP to the Snowflake tier's server)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from prefect.blocks.system import Secret

from deployments import blocks
from flows.drain import drain_to_warehouse
from flows.trends import build_trends
from stockpipe.settings import Settings, load_settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.base import WarehouseError
from tests.support import SnowflakeServer, distinct_bar_messages, set_up_warehouse

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

    # Imported here: the integrations take seconds to import on every worker's collection.
    from prefect_aws.s3 import S3Bucket
    from prefect_snowflake import SnowflakeConnector

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


@pytest.fixture
def worker_with_block(
    prefect_api,
    env_settings: Settings,
    snowflake_server: SnowflakeServer,
    snowflake_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    """The VM's worker environment (group_vars/stockpipe_vm) on a set-up warehouse: the
    connector block's name and no login; 1,000 bars wait in the prices topic.

    Returns:
        how many statements the server had seen before (the set-up's).
    """
    set_up_warehouse(load_settings())  # the admin, with the admin's own login
    blocks.main()  # the block holds the login (python -m deployments.blocks)
    set_up = len(snowflake_server.statements(snowflake_env))
    for name in ("ACCOUNT", "USER", "PASSWORD"):
        monkeypatch.delenv(f"STOCKPIPE_WAREHOUSE__{name}")
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__CONNECTOR_BLOCK", blocks.SNOWFLAKE_CONNECTOR)
    QuoteProducer(env_settings.kafka).publish_raw(
        (k, v, None) for k, v in distinct_bar_messages(1_000)
    )
    return set_up


def test_the_drain_flow_connects_through_the_connector_block_as_the_loader(
    worker_with_block: int, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    set_up = worker_with_block

    drained = drain_to_warehouse()

    assert drained["inserted"] == 1_000
    with Warehouse.connect(load_settings(), "read") as warehouse:
        assert warehouse.query("select count(*) from RAW.STOCK_PRICES")[0][0] == 1_000
    runtime = snowflake_server.statements(snowflake_env)[set_up:]
    # Each session logged in as its purpose's role (no "use role" after the block's login),
    # not as whatever role the block's user defaults to.
    assert {e["role"] for e in runtime} == {"STOCKPIPE_LOADER", "STOCKPIPE_READER"}
    assert not [e["sql"] for e in runtime if e["sql"].lower().startswith("use role")]


def test_a_block_for_another_database_is_refused_naming_both(
    prefect_api,
    snowflake_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stockpipe.warehouse.base import WarehouseError

    blocks.main()
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__DATABASE", "OTHER_DB")
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__CONNECTOR_BLOCK", blocks.SNOWFLAKE_CONNECTOR)
    with pytest.raises(WarehouseError) as refused, Warehouse.connect(load_settings(), "load"):
        pass
    assert snowflake_env in str(refused.value) and "OTHER_DB" in str(refused.value)


def test_the_trends_flow_logs_dbt_in_through_the_connector_block_as_the_transformer(
    worker_with_block: int, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    set_up = worker_with_block
    drain_to_warehouse()

    latest = build_trends()

    assert {row["symbol"] for row in latest} == {f"SYM{i:03d}" for i in range(500)}
    with Warehouse.connect(load_settings(), "read") as warehouse:
        assert warehouse.query("select count(*) from MARTS.DAILY_BARS")[0][0] == 500
    runtime = snowflake_server.statements(snowflake_env)[set_up:]
    assert "STOCKPIPE_TRANSFORMER" in {e["role"] for e in runtime}
    # dbt read the password from the environment: profiles.yml names the variable only.
    profile = yaml.safe_load((load_settings().dbt_dir / "profiles.yml").read_text())
    login = profile["stockpipe"]["outputs"]["snowflake"]
    assert login["password"] == "{{ env_var('DBT_ENV_SECRET_STOCKPIPE_PASSWORD') }}"
    assert (login["account"], login["user"]) == ("fakesnow", "fake")  # the block's


def _key_file(path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_each_runtime_role_logs_in_as_its_own_service_user_from_its_own_block(
    prefect_api,
    env_settings: Settings,
    snowflake_server: SnowflakeServer,
    snowflake_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> None:
    """README "One Snowflake user per role", as the VM runs it: the set-up (the admin's
    login) creates a service user per runtime role with the public key of its key file and
    grants it that role alone; the blocks carry each user's key, so the worker, which never
    had the files, logs in as the drain's, dbt's and the reader's user by key pair (the
    server checks each JWT against the key CREATE USER registered, as Snowflake does), and a
    user cannot take another's role."""
    users = {
        field: f"{snowflake_env}_{field.removesuffix('_LOGIN')}"
        for field in ("LOADER_LOGIN", "TRANSFORMER_LOGIN", "READER_LOGIN")
    }
    for field, user in users.items():
        _key_file(tmp_path / f"{user}.p8")
        monkeypatch.setenv(f"STOCKPIPE_WAREHOUSE__{field}__USER", user)
        monkeypatch.setenv(
            f"STOCKPIPE_WAREHOUSE__{field}__PRIVATE_KEY_FILE", str(tmp_path / f"{user}.p8")
        )

    made = set_up_warehouse(load_settings())  # the admin, with the admin's own login
    assert [name for name in made if name.startswith("service user")] == [
        f"service user {users['LOADER_LOGIN']} (STOCKPIPE_LOADER)",
        f"service user {users['TRANSFORMER_LOGIN']} (STOCKPIPE_TRANSFORMER)",
        f"service user {users['READER_LOGIN']} (STOCKPIPE_READER)",
    ]
    set_up = snowflake_server.statements(snowflake_env)
    creating = [e for e in set_up if e["sql"].lower().startswith(("create user", "grant role"))]
    assert creating and {e["role"] for e in creating} == {"USERADMIN"}
    blocks.main()
    for key_file in tmp_path.glob("*.p8"):
        key_file.unlink()  # the worker's machine never had them

    # The worker's environment (group_vars/stockpipe_vm): a block per role, no login.
    for name in ("ACCOUNT", "USER", "PASSWORD"):
        monkeypatch.delenv(f"STOCKPIPE_WAREHOUSE__{name}")
    for field in users:
        monkeypatch.delenv(f"STOCKPIPE_WAREHOUSE__{field}__USER")
        monkeypatch.delenv(f"STOCKPIPE_WAREHOUSE__{field}__PRIVATE_KEY_FILE")
        block = blocks.SNOWFLAKE_ROLE_CONNECTORS[field.lower()]
        monkeypatch.setenv(f"STOCKPIPE_WAREHOUSE__{field}__CONNECTOR_BLOCK", block)
    QuoteProducer(env_settings.kafka).publish_raw(
        (k, v, None) for k, v in distinct_bar_messages(100)
    )

    assert drain_to_warehouse()["inserted"] == 100
    assert len(build_trends()) == 100

    runtime = snowflake_server.statements(snowflake_env)[len(set_up) :]
    logins = {(e["role"], e["user"], e["authenticator"]) for e in runtime}
    assert logins == {
        ("STOCKPIPE_LOADER", users["LOADER_LOGIN"], "SNOWFLAKE_JWT"),
        ("STOCKPIPE_TRANSFORMER", users["TRANSFORMER_LOGIN"], "SNOWFLAKE_JWT"),
        ("STOCKPIPE_READER", users["READER_LOGIN"], "SNOWFLAKE_JWT"),
    }
    from prefect_snowflake import SnowflakeConnector

    credentials = SnowflakeConnector.load(
        blocks.SNOWFLAKE_ROLE_CONNECTORS["loader_login"]
    ).credentials
    assert credentials.password is None and credentials.private_key_path is None

    # The reader's login cannot act as the loader: Snowflake refuses a role not granted.
    monkeypatch.setenv(
        "STOCKPIPE_WAREHOUSE__LOADER_LOGIN__CONNECTOR_BLOCK",
        blocks.SNOWFLAKE_ROLE_CONNECTORS["reader_login"],
    )
    with pytest.raises(WarehouseError) as refused, Warehouse.connect(load_settings(), "load"):
        pass
    assert "STOCKPIPE_LOADER" in str(refused.value) and "not granted" in str(refused.value)
