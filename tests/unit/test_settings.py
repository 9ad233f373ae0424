"""Settings: defaults, environment overrides, and errors that name the variable."""

from __future__ import annotations

import pytest

from stockpipe.settings import DEFAULT_WATCHLIST, ConfigError, load_settings


def test_local_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.profile == "local"
    assert settings.warehouse.backend == "embedded"
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert settings.kafka.client_config() == {"bootstrap.servers": "localhost:9092"}
    assert settings.source.watchlist == list(DEFAULT_WATCHLIST)
    assert settings.kafka.prices_topic == "stock_prices"


def test_nested_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", "msft, aapl,BRK.B,^GSPC")
    monkeypatch.setenv("STOCKPIPE_DRAIN__MAX_RECORDS", "500")
    settings = load_settings()
    assert settings.source.watchlist == ["MSFT", "AAPL", "BRK.B", "^GSPC"]
    assert settings.drain.max_records == 500


def test_local_bootstrap_follows_the_local_broker_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_LOCAL_KAFKA__PORT", "29092")
    assert load_settings().kafka.bootstrap_servers == "localhost:29092"
    monkeypatch.setenv("STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS", "broker.example:9094")
    assert load_settings().kafka.bootstrap_servers == "broker.example:9094"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("STOCKPIPE_SOURCE__WATCHLIST", "AAPL,not a ticker", "STOCKPIPE_SOURCE__WATCHLIST"),
        ("STOCKPIPE_KAFKA__PRICES_TOPIC", "bad topic!", "STOCKPIPE_KAFKA__PRICES_TOPIC"),
        ("STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS", "nohostport", "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"),
        ("STOCKPIPE_DRAIN__MAX_RECORDS", "0", "STOCKPIPE_DRAIN__MAX_RECORDS"),
        ("STOCKPIPE_WAREHOUSE__DATABASE", "stocks; drop table x", "STOCKPIPE_WAREHOUSE__DATABASE"),
        ("STOCKPIPE_PROFILE", "staging", "STOCKPIPE_PROFILE"),
        # Rules across fields name both.
        (
            "STOCKPIPE_KAFKA__MIN_INSYNC_REPLICAS",
            "2",
            "min_insync_replicas (2) cannot exceed replication_factor (1)",
        ),
        ("STOCKPIPE_SOURCE__KIND", "replay", "STOCKPIPE_SOURCE: kind=replay needs replay_path"),
    ],
)
def test_bad_setting_fails_with_its_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_cloud_profile_names_every_missing_snowflake_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__BACKEND", "snowflake")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "STOCKPIPE_WAREHOUSE" in message
    for field in ("account", "user", "password"):
        assert field in message


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("myorg-acct.snowflakecomputing.com", False),
        ("10.1.2.3", False),
        (None, False),
    ],
)
def test_snowflake_over_http_is_only_for_a_server_on_this_machine(
    monkeypatch: pytest.MonkeyPatch, host: str | None, allowed: bool
) -> None:
    """The login and the rows would cross the network readable over plain http."""
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__PROTOCOL", "http")
    if host is not None:
        monkeypatch.setenv("STOCKPIPE_WAREHOUSE__HOST", host)
    if allowed:
        assert load_settings().warehouse.protocol == "http"
        return
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "STOCKPIPE_WAREHOUSE" in str(caught.value)
    assert "protocol=http sends the Snowflake login in clear text" in str(caught.value)


def test_sasl_ssl_needs_credentials_and_never_prints_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKPIPE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="sasl_username, sasl_password"):
        load_settings()
    monkeypatch.setenv("STOCKPIPE_KAFKA__SASL_USERNAME", "drain")
    monkeypatch.setenv("STOCKPIPE_KAFKA__SASL_PASSWORD", "s3cr3t-value")
    settings = load_settings()
    assert settings.kafka.client_config()["sasl.password"] == "s3cr3t-value"
    assert "s3cr3t-value" not in settings.model_dump_json()
    assert "s3cr3t-value" not in repr(settings)


@pytest.mark.parametrize(
    ("servers", "allowed"),
    [
        ("127.0.0.1:9092", True),
        ("localhost:9092,[::1]:9092", True),
        ("10.20.0.2:9095", False),
        ("127.0.0.1:9092,kafka.example.com:9092", False),
    ],
)
def test_sasl_plaintext_logs_in_only_over_loopback(
    monkeypatch: pytest.MonkeyPatch, servers: str, allowed: bool
) -> None:
    """The VM's flows log in to their broker on loopback without TLS; anywhere else the
    messages (and the session) would cross a network in clear text."""
    monkeypatch.setenv("STOCKPIPE_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS", servers)
    monkeypatch.setenv("STOCKPIPE_KAFKA__SASL_USERNAME", "stockpipe-worker")
    monkeypatch.setenv("STOCKPIPE_KAFKA__SASL_PASSWORD", "worker-secret-4")
    monkeypatch.setenv("STOCKPIPE_KAFKA__SSL_CA_LOCATION", "/etc/ssl/certs/ca.pem")
    if not allowed:
        with pytest.raises(ConfigError, match="only to a loopback address") as caught:
            load_settings()
        assert "STOCKPIPE_KAFKA" in str(caught.value)
        return
    config = load_settings().kafka.client_config()
    assert config["security.protocol"] == "SASL_PLAINTEXT"
    assert (config["sasl.username"], config["sasl.password"]) == (
        "stockpipe-worker",
        "worker-secret-4",
    )
    assert "ssl.ca.location" not in config  # no TLS on this listener


def test_cloud_profile_requires_snowflake_and_sasl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_PROFILE", "cloud")
    with pytest.raises(ConfigError, match=r"warehouse\.backend=snowflake"):
        load_settings()


def test_a_runtime_roles_service_user_logs_in_by_key_pair_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__BACKEND", "snowflake")
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__LOADER_LOGIN__USER", "stockpipe_loader_svc")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "STOCKPIPE_WAREHOUSE" in str(caught.value)
    assert "user STOCKPIPE_LOADER_SVC needs private_key_file" in str(caught.value)

    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__LOADER_LOGIN__USER", "loader; drop user x")
    with pytest.raises(ConfigError, match="not a plain Snowflake identifier"):
        load_settings()


def test_a_block_per_runtime_role_is_a_whole_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """The VM's worker: one block per runtime role and no shared login; a role without a
    login of its own falls back to the shared one, which must then be complete."""
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__BACKEND", "snowflake")
    for role in ("LOADER", "TRANSFORMER"):
        monkeypatch.setenv(f"STOCKPIPE_WAREHOUSE__{role}_LOGIN__CONNECTOR_BLOCK", f"b-{role}")
    with pytest.raises(ConfigError, match="needs account, user, password"):
        load_settings()
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__READER_LOGIN__CONNECTOR_BLOCK", "b-READER")
    logins = load_settings().warehouse.service_logins()
    assert {purpose: runtime.login.connector_block for purpose, runtime in logins.items()} == {
        "load": "b-LOADER",
        "transform": "b-TRANSFORMER",
        "read": "b-READER",
    }
