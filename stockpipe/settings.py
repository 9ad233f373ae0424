"""The one settings object.

Every setting is read from the environment (prefix ``STOCKPIPE_``, nested fields joined by
``__``, e.g. ``STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS``) or from a ``.env`` file in the working
directory. Nothing else in the code reads ``os.environ`` for configuration.

Two profiles:

* ``local`` (default): embedded defaults, no cloud account. A KRaft broker on localhost,
  the warehouse is DuckDB through fakesnow under ``STOCKPIPE_HOME``, the raw zone (when
  enabled) is a local directory, quotes come from the simulated market.
* ``cloud``: real Snowflake, optional S3 raw zone, a remote Kafka over SASL_SSL. Missing
  credentials fail at start with the name of the setting to set.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stockpipe.quote_spec import SYMBOL_PATTERN
from stockpipe.streaming.kafka import topology

ENV_PREFIX = "STOCKPIPE_"
ENV_NESTED_DELIMITER = "__"

# Snowflake identifiers that come from configuration are interpolated into DDL/DML (they
# cannot be bound as parameters), so they must be plain unquoted identifiers.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
# Kafka's legal topic characters (TopicValidator in Kafka itself).
_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
# The points of a drain's batch, in order, where a crash test may have the drain kill itself
# (drain.kill_at) or stop until SIGCONT (drain.pause_at, a race test). The dead-letter points
# are reached only by batches with dead letters.
KILL_POINTS = (
    "decoded",
    "dead_letters_in_flight",  # handed to the producer, acknowledgements not yet awaited
    "dead_letters_sent",  # acknowledged; raw zone and warehouse not yet written
    "raw_zone_written",  # the batch's Parquet files exist; the warehouse commit has not run
    "offsets_claimed",  # in the commit's transaction: offsets claimed (their lock held), no rows
    "warehouse_committed",  # rows and offsets committed; the Kafka group commit has not run
    "group_committed",  # the whole batch is done
)
KILL_POINT_PATTERN = rf"^({'|'.join(KILL_POINTS)})(@[1-9][0-9]*)?$"
# A DuckDB memory limit as the settings take it (it is written into SQL: nothing else).
MEMORY_LIMIT_PATTERN = r"^\d+(MB|GB)$"
_SYMBOL = re.compile(SYMBOL_PATTERN)

# Topic names, partitions and groups default to the pipeline's topology (its one definition,
# which the playbook reads too).
_TOPICS = topology()["topics"]
_GROUPS = topology()["consumer_groups"]

DEFAULT_WATCHLIST = ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "XOM")


class ConfigError(ValueError):
    """A setting is missing or invalid. The message names the environment variable."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KafkaSettings(BaseModel):
    """Where the pipeline's Kafka is and how to talk to it."""

    bootstrap_servers: str = Field(
        "localhost:9092", description="host:port[,host:port]; the local broker by default"
    )
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="PLAINTEXT for the local broker; SASL_PLAINTEXT (SCRAM, no TLS) only to a "
        "loopback address, as the VM's flows reach their broker; SASL_SSL for the VM's "
        "external listener and a cluster's nodes",
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(
        None, description="CA certificate (PEM) that signed the broker's certificate"
    )
    prices_topic: str = _TOPICS["prices"]["name"]
    alerts_topic: str = _TOPICS["alerts"]["name"]
    dlq_topic: str = _TOPICS["dead_letters"]["name"]
    forming_topic: str = Field(
        _TOPICS["forming"]["name"],
        description="the forming minute's bars while trades come in (ingest --follow), each "
        "superseded a second later: never final bars, never drained",
    )
    prices_partitions: int = Field(
        _TOPICS["prices"]["partitions"], ge=1, le=256, description="partitions of the prices topic"
    )
    replication_factor: int = Field(
        1,
        ge=1,
        le=16,
        description="copies of each partition when stockpipe creates the topics: 1 on one "
        "broker, 3 on a three-node cluster (gce_vm_nodes: 3)",
    )
    min_insync_replicas: int = Field(
        1,
        ge=1,
        le=16,
        description="copies that must have a write before it is acknowledged (producers use "
        "acks=all): 2 with replication_factor 3, so one node may be down without losing a "
        "write or stopping the producers",
    )
    consumer_group: str = Field(_GROUPS["drain"], min_length=1)
    live_consumer_group: str = Field(
        _GROUPS["live"], min_length=1, description="the live tier's group on the prices topic"
    )
    consumer_instance_id: str | None = Field(
        None,
        description="static group membership: a restarted drain with the same id takes its "
        "partitions back at once instead of waiting for the old session to time out",
    )
    # Kafka's default (45 s) suits long-lived consumers. A drain is a batch job: when one is
    # killed, the next run cannot get its partitions until the dead member's session times
    # out, so a short session makes a restart quick. Heartbeats come from librdkafka's own
    # thread, so a long warehouse commit does not end the session; the broker accepts
    # 6 s..30 min (group.min/max.session.timeout.ms).
    consumer_session_timeout_seconds: float = Field(
        10.0,
        ge=6,
        le=1800,
        description="how long a drain that died keeps its partitions before the group "
        "hands them to the next drain",
    )

    connect_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        description="how long a command waits for a broker to answer before it fails "
        "saying which address it could not reach",
    )

    @field_validator("prices_topic", "alerts_topic", "dlq_topic", "forming_topic")
    @classmethod
    def _valid_topic(cls, value: str) -> str:
        if not _TOPIC.match(value) or value in {".", ".."}:
            raise ValueError(f"{value!r} is not a legal Kafka topic name (letters, digits, . _ -)")
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _valid_servers(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) cannot exceed "
                f"replication_factor ({self.replication_factor}): no write could be acknowledged"
            )
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            missing = [
                name
                for name in ("sasl_username", "sasl_password")
                if getattr(self, name) in (None, "")
            ]
            if missing:
                raise ValueError(
                    f"security_protocol={self.security_protocol} needs {', '.join(missing)}"
                )
        return self

    @model_validator(mode="after")
    def _cleartext_sasl_only_to_loopback(self) -> KafkaSettings:
        # Without TLS a network path would see every message and could take over the session.
        if self.security_protocol == "SASL_PLAINTEXT":
            remote = [
                server.strip()
                for server in self.bootstrap_servers.split(",")
                if not _is_loopback(server.strip().rpartition(":")[0].strip("[]"))
            ]
            if remote:
                raise ValueError(
                    f"security_protocol=SASL_PLAINTEXT sends messages without TLS: only to a "
                    f"loopback address, not {', '.join(remote)} (use SASL_SSL)"
                )
        return self

    def client_config(self) -> dict[str, str]:
        """librdkafka settings shared by producers, consumers and the admin client."""
        config = {"bootstrap.servers": self.bootstrap_servers}
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None
            config |= {
                "security.protocol": self.security_protocol,
                "sasl.mechanisms": self.sasl_mechanism,
                "sasl.username": self.sasl_username or "",
                "sasl.password": self.sasl_password.get_secret_value(),
            }
            if self.security_protocol == "SASL_SSL" and self.ssl_ca_location:
                config["ssl.ca.location"] = str(self.ssl_ca_location)
        return config


class LocalKafkaSettings(BaseModel):
    """The single-node KRaft broker that ``stockpipe kafka up`` runs on this machine."""

    version: str = Field("4.1.2", pattern=r"^4\.\d+\.\d+$", description="Apache Kafka 4.x")
    kafka_home: Path | None = Field(
        None,
        description="an unpacked Apache Kafka tarball to run instead of the Maven Central jars",
    )
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    dist_dir: Path = Field(
        Path("~/.cache/stockpipe/kafka"), description="cache of installed broker jars"
    )
    heap: str = Field("512m", pattern=r"^\d+[mMgG]$", description="JVM -Xmx/-Xms")
    start_timeout_seconds: float = Field(60, gt=0)
    jmx_exporter_port: int = Field(
        7071, ge=0, le=65535, description="Prometheus JMX exporter on the broker (0: off)"
    )


def _snowflake_identifier(value: str | None) -> str | None:
    """``value`` upper-cased, as Snowflake resolves an unquoted identifier; refused unless
    it is a plain one (it is written into SQL as is)."""
    if value is not None and not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain Snowflake identifier ([A-Za-z_][A-Za-z0-9_$]*)")
    return value.upper() if value else value


class ServiceLogin(BaseModel):
    """A runtime role's own Snowflake user: a service user with a key pair, so a leaked
    login of one process (the drain's, say) cannot act as another's role.

    ``stockpipe warehouse setup`` creates the user (``TYPE = SERVICE``, the public key of
    ``private_key_file``) and grants it its role alone; ``python -m deployments.blocks``
    saves its login, key included, as a block of its own for a worker elsewhere.
    """

    user: str | None = Field(
        None, description="the service user (created by `stockpipe warehouse setup`)"
    )
    private_key_file: Path | None = Field(
        None,
        description="its private key (PEM, unencrypted PKCS#8); the set-up registers "
        "the public key",
    )
    connector_block: str | None = Field(
        None, description="or a saved SnowflakeConnector block holding its login (the VM)"
    )

    @field_validator("user")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return _snowflake_identifier(value)

    @model_validator(mode="after")
    def _user_needs_key(self) -> ServiceLogin:
        if self.user and not self.private_key_file:
            raise ValueError(
                f"user {self.user} needs private_key_file: a service user logs in with its "
                "key pair (Snowflake gives service users no password)"
            )
        return self

    @property
    def configured(self) -> bool:
        return bool(self.user or self.connector_block)


class RuntimeLogin(NamedTuple):
    """A runtime purpose's own login: the setting that holds it (``loader_login``...), the
    role it runs as, and the login itself."""

    setting: str
    role: str
    login: ServiceLogin


class WarehouseSettings(BaseModel):
    """Snowflake, or its embedded stand-in (DuckDB through fakesnow).

    On Snowflake, ``stockpipe warehouse setup`` runs once as ``setup_role`` and creates the
    database, the virtual warehouse and the tables; it switches to ``user_admin_role`` for the
    three runtime roles and to ``account_admin_role`` for the resource monitor only. Each
    process then runs as the role of its purpose (the drain as ``loader_role``,
    trends as ``transformer_role``, validation and the dashboard as ``reader_role``).
    """

    backend: Literal["embedded", "snowflake"] = "embedded"
    database: str = "STOCKS"
    account: str | None = Field(None, description="Snowflake account identifier")
    user: str | None = None
    password: SecretStr | None = None
    private_key_file: Path | None = Field(None, description="key-pair auth instead of password")
    host: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.\-]+$",
        description="endpoint host (default: <account>.snowflakecomputing.com); a private-link "
        "host, or a server speaking Snowflake's protocol",
    )
    port: int | None = Field(None, ge=1, le=65535, description="endpoint port (default 443)")
    protocol: Literal["https", "http"] | None = Field(
        None, description="endpoint protocol (default https; http only for a local test server)"
    )
    warehouse: str = Field("STOCKPIPE_WH", description="virtual warehouse (created by setup)")
    setup_role: str = Field(
        "SYSADMIN",
        description="role that runs `stockpipe warehouse setup` and owns what it creates "
        "(the database, schemas, RAW's tables, the virtual warehouse) and grants on them",
    )
    user_admin_role: str = Field(
        "USERADMIN",
        description="role the set-up switches to for creating the runtime roles (CREATE ROLE)",
    )
    account_admin_role: str = Field(
        "ACCOUNTADMIN",
        description="role the set-up switches to for the resource monitor, which only "
        "ACCOUNTADMIN may create and assign",
    )
    loader_role: str = Field("STOCKPIPE_LOADER", description="the drain's role: writes RAW")
    transformer_role: str = Field(
        "STOCKPIPE_TRANSFORMER", description="trends' role: reads RAW, writes MARTS"
    )
    reader_role: str = Field(
        "STOCKPIPE_READER", description="validation's and the dashboard's role: reads only"
    )
    loader_login: ServiceLogin = Field(
        default_factory=ServiceLogin,
        description="the drain's own service user; unset: the shared login (user, ...)",
    )
    transformer_login: ServiceLogin = Field(
        default_factory=ServiceLogin,
        description="trends' own service user; unset: the shared login",
    )
    reader_login: ServiceLogin = Field(
        default_factory=ServiceLogin,
        description="validation's and the dashboard's own service user; unset: the shared login",
    )
    auto_suspend_seconds: int = Field(
        60,
        ge=60,
        description="suspend the virtual warehouse after this long idle (each resume bills "
        "at least 60 s, so shorter saves nothing)",
    )
    monthly_credit_quota: int = Field(
        30, ge=1, description="resource monitor: suspend the warehouse past this many credits"
    )
    lock_timeout_seconds: int = Field(
        300, ge=1, description="how long a statement waits for a lock before it fails"
    )
    statement_timeout_seconds: int = Field(
        1800,
        ge=60,
        le=604800,
        description="the virtual warehouse cancels a statement that runs longer (set by "
        "`stockpipe warehouse setup`; Snowflake's own default is two days)",
    )
    connector_block: str | None = Field(
        None,
        description="a saved prefect-snowflake SnowflakeConnector block to connect with "
        "(python -m deployments.blocks saves 'stockpipe-snowflake'): the login, database, "
        "warehouse and schema come from it; roles, session parameters and host/port/protocol "
        "from these settings",
    )
    embedded_memory_limit: str = Field(
        "auto",
        pattern=r"^(auto|\d+(MB|GB))$",
        validate_default=True,
        # A full refresh of the daily marts needs more than a drain's limit (the drain has
        # its own, drain.embedded_memory_limit); 'auto' keeps the VM's 1 GiB budget and stops
        # a laptop spilling to disk (README, "Why the tuned settings are what they are").
        description="DuckDB memory limit of the embedded warehouse; 'auto' is a tenth of "
        "the machine's memory, at least 96MB and at most 2GB",
    )

    @field_validator("embedded_memory_limit")
    @classmethod
    def _memory_limit(cls, value: str) -> str:
        if value != "auto":
            return value
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        return f"{max(96, min(2048, total_mb // 10))}MB"

    @field_validator(
        "database",
        "warehouse",
        "setup_role",
        "user_admin_role",
        "account_admin_role",
        "loader_role",
        "transformer_role",
        "reader_role",
    )
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return _snowflake_identifier(value)

    @model_validator(mode="after")
    def _http_only_to_loopback(self) -> WarehouseSettings:
        # The login (password or key-pair token) and every row would cross the network
        # readable: plain http is for a server on this machine (the tests' stand-in).
        if self.protocol == "http" and not _is_loopback(self.host):
            raise ValueError(
                f"protocol=http sends the Snowflake login in clear text: allowed only with "
                f"host on this machine (127.0.0.1, localhost), not {self.host!r}; "
                "leave protocol unset (https) for a real account"
            )
        return self

    @model_validator(mode="after")
    def _snowflake_needs_credentials(self) -> WarehouseSettings:
        if self.backend != "snowflake" or self.connector_block:
            return self
        logins = [runtime.login for runtime in self.service_logins().values()]
        missing = []
        if not self.account and not all(login.connector_block for login in logins):
            missing.append("account")
        # The runtime roles each have a login of their own, or fall back to the shared one.
        if not all(login.configured for login in logins):
            if not self.user:
                missing.append("user")
            if not self.password and not self.private_key_file:
                missing.append("password (or private_key_file)")
        if missing:
            raise ValueError(f"backend=snowflake needs {', '.join(missing)}")
        return self

    def service_logins(self) -> dict[str, RuntimeLogin]:
        """Each runtime purpose's own login, its setting and its role (a login left unset:
        the purpose uses the shared one)."""
        return {
            "load": RuntimeLogin("loader_login", self.loader_role, self.loader_login),
            "transform": RuntimeLogin(
                "transformer_login", self.transformer_role, self.transformer_login
            ),
            "read": RuntimeLogin("reader_login", self.reader_role, self.reader_login),
        }


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LakeSettings(BaseModel):
    """The raw zone: immutable Parquet files of every loaded batch (off by default locally)."""

    enabled: bool = False
    s3_bucket: str | None = Field(None, description="bucket name; a local directory when unset")
    s3_bucket_block: str | None = Field(
        None, description="name of a saved prefect-aws S3Bucket block (wins over s3_bucket)"
    )
    s3_region: str | None = None
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (tests: moto)")
    prefix: str = Field("raw", pattern=r"^[A-Za-z0-9_\-/]+$")


class SourceSettings(BaseModel):
    """Where quotes come from and for which symbols."""

    kind: Literal["simulated", "replay", "yfinance", "finnhub", "alphavantage"] = "simulated"
    watchlist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_WATCHLIST),
        description="comma-separated tickers",
    )
    interval: Literal["1m"] = "1m"
    seed: int = Field(42, description="seed of the simulated market")
    replay_path: Path | None = Field(None, description="CSV/Parquet file or directory to replay")
    yfinance_chunk_size: int = Field(50, ge=1, le=500, description="tickers per yf.download call")
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(60.0, gt=0)
    finnhub_api_key: SecretStr | None = Field(
        None, description="Finnhub API key (kind=finnhub); never printed or logged"
    )
    finnhub_api_key_block: str | None = Field(
        None, description="a Prefect Secret block holding the Finnhub key, instead of the key"
    )
    finnhub_url: str = Field(
        "https://finnhub.io/api/v1", description="Finnhub's REST API (tests: a local server)"
    )
    finnhub_ws_url: str = Field(
        "wss://ws.finnhub.io", description="Finnhub's trades websocket (ingest --follow)"
    )
    live_grace_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description="ingest --follow: how long after a minute ends its bar waits for late trades",
    )
    live_forming_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="ingest --follow: how often the forming minute's bars go to the forming "
        "topic, for the dashboard's last price (0: never)",
    )
    finnhub_calls_per_minute: int = Field(
        60, ge=1, description="the plan's REST budget (free plan: 60 calls a minute)"
    )
    alphavantage_api_key: SecretStr | None = Field(
        None, description="Alpha Vantage API key (kind=alphavantage); never printed or logged"
    )
    alphavantage_api_key_block: str | None = Field(
        None, description="a Prefect Secret block holding the Alpha Vantage key"
    )
    alphavantage_url: str = Field(
        "https://www.alphavantage.co/query", description="Alpha Vantage's API (tests: local)"
    )
    alphavantage_calls_per_minute: int = Field(
        5, ge=1, description="the plan's budget per minute (free plan: 5)"
    )
    alphavantage_calls_per_day: int = Field(
        25, ge=1, description="the plan's budget per day (free plan: 25)"
    )
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="how long one HTTP request to a provider may take"
    )

    @field_validator("watchlist", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("watchlist")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("the watchlist is empty")
        cleaned = [s.strip().upper() for s in value]
        bad = [s for s in cleaned if not _SYMBOL.match(s)]
        if bad:
            raise ValueError(f"not tickers: {', '.join(map(repr, bad))} (pattern {SYMBOL_PATTERN})")
        return list(dict.fromkeys(cleaned))

    @model_validator(mode="after")
    def _replay_needs_path(self) -> SourceSettings:
        if self.kind == "replay" and self.replay_path is None:
            raise ValueError("kind=replay needs replay_path")
        for kind in ("finnhub", "alphavantage"):
            key, block = getattr(self, f"{kind}_api_key"), getattr(self, f"{kind}_api_key_block")
            if self.kind == kind and not (key and key.get_secret_value()) and not block:
                variable = f"{ENV_PREFIX}SOURCE{ENV_NESTED_DELIMITER}{kind.upper()}_API_KEY"
                raise ValueError(
                    f"kind={kind} needs an API key: set {variable} (or {variable}_BLOCK, "
                    "the name of a Prefect Secret block holding it)"
                )
        return self


class DrainSettings(BaseModel):
    """Batch thresholds of the drain, like the Snowflake Kafka connector's buffer settings."""

    # As fast as larger batches for less peak memory (README, "Why the tuned settings are
    # what they are").
    max_records: int = Field(20_000, ge=1, description="records per warehouse commit")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="payload bytes per commit")
    max_wait_seconds: float = Field(5.0, gt=0, description="longest a batch stays open")
    max_latency_seconds: float = Field(
        1.0,
        gt=0,
        description="a batch commits at most this long after its first record (a following "
        "drain's bars are in the warehouse within about this while they keep coming)",
    )
    max_message_bytes: int = Field(16 * 1024, ge=256, description="larger payloads are rejected")
    # DuckDB keeps table blocks it read up to its limit; a lower one costs a drain no speed
    # (README, "Why the tuned settings are what they are").
    embedded_memory_limit: str = Field(
        "48MB",
        pattern=MEMORY_LIMIT_PATTERN,
        description="DuckDB memory limit of the embedded warehouse while a drain runs",
    )
    assignment_wait_seconds: float = Field(
        60.0,
        gt=0,
        description="how long a drain waits for the group to give it partitions (a drain that "
        "died holds them for kafka.consumer_session_timeout_seconds) before it fails",
    )
    kill_at: str | None = Field(
        None,
        pattern=KILL_POINT_PATTERN,
        description="tests only: the drain SIGKILLs itself at this point of the first batch "
        "from N on, as POINT or POINT@N (points: KILL_POINTS)",
    )
    pause_at: str | None = Field(
        None,
        pattern=KILL_POINT_PATTERN,
        description="tests only: the drain stops itself (SIGSTOP) once, at this point of batch "
        "N, as POINT or POINT@N (points: KILL_POINTS); SIGCONT resumes it",
    )
    load_retries: int = Field(5, ge=0, le=20, description="retries of a failed warehouse commit")
    load_retry_base_seconds: float = Field(
        1.0, ge=0, description="first backoff of a failed commit; doubles, with full jitter"
    )


class TrendSettings(BaseModel):
    """The trend build (the dbt project in sql/) and the trends flow's alert rules."""

    alert_day_change_pct: float = Field(
        5.0, gt=0, description="alert when a symbol moves at least this much on the day (%)"
    )
    dbt_dir: Path | None = Field(
        None,
        description="where dbt keeps its profile, target (manifest, run results, docs) and "
        "logs (default <home>/dbt); installations sharing one re-parse only what changed",
    )
    snowflake_threads: int = Field(
        4,
        ge=1,
        le=16,
        description="models dbt builds at once on Snowflake, each on a session of its own "
        "(the embedded warehouse builds one at a time)",
    )


class ValidationSettings(BaseModel):
    """Data validation (Great Expectations)."""

    freshness_minutes: int = Field(
        20,
        ge=1,
        # Drains run every 10 minutes (prefect.yaml): a bar may wait up to ~10 minutes for
        # its load, and its minute starts before it is published.
        description="while the market is open, the newest bar must be this recent",
    )
    data_docs_s3_bucket: str | None = Field(
        None, description="also publish GX Data Docs to this S3 bucket (endpoint: the lake's)"
    )
    data_docs_s3_prefix: str = "data-docs"
    docs_assets_dir: Path = Field(
        Path("~/.cache/stockpipe/data-docs-assets"),
        description="cache of the Data Docs pages' scripts, styles and fonts (npm tarballs), "
        "so the pages need no CDN",
    )
    npm_registry: str = Field(
        "https://registry.npmjs.org",
        pattern=r"^https?://",
        description="where those assets are downloaded from once (a mirror works too)",
    )


class DashboardSettings(BaseModel):
    """The Streamlit dashboard (``stockpipe dashboard``) and the static HTML report."""

    address: str = Field("127.0.0.1", description="address the dashboard listens on")
    port: int = Field(8501, ge=1, le=65535)
    refresh_seconds: int = Field(
        60, ge=5, description="while the market is open, the page re-reads the marts this often"
    )
    cache_seconds: int = Field(
        300,
        ge=0,
        # Each Snowflake query after the cache expires may resume the warehouse, and a resume
        # bills at least 60 s; the trends build changes the marts every 10 minutes anyway.
        description="Snowflake: how long query results are reused across page views (the "
        "embedded warehouse's snapshot is re-read as soon as a build replaces it)",
    )
    history_days: int = Field(365, ge=7, description="the date range shown at first")


class MetricsSettings(BaseModel):
    """Where pipeline metrics go."""

    pushgateway_url: str | None = Field(
        None, description="host:port of a Prometheus Pushgateway; batch runs push there"
    )
    port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics here while `drain --follow` runs"
    )
    # The local monitoring stack (`stockpipe monitoring up`).
    prometheus_port: int = Field(9090, ge=1, le=65535)
    pushgateway_port: int = Field(9091, ge=1, le=65535)
    node_exporter_port: int = Field(9100, ge=1, le=65535)
    scrape_interval: str = Field("15s", pattern=r"^\d+(ms|s|m)$")


class Settings(BaseSettings):
    """All of stockpipe's configuration. See README, section Configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_file=".env",
        extra="ignore",
    )

    profile: Literal["local", "cloud"] = "local"
    home: Path = Field(
        Path(".stockpipe"),
        description="local state: broker data and logs, the embedded warehouse, the raw zone",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    local_kafka: LocalKafkaSettings = Field(default_factory=LocalKafkaSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    drain: DrainSettings = Field(default_factory=DrainSettings)
    trends: TrendSettings = Field(default_factory=TrendSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)

    @model_validator(mode="after")
    def _local_bootstrap_follows_port(self) -> Settings:
        # Moving the local broker to another port should not need a second setting.
        if "bootstrap_servers" not in self.kafka.model_fields_set:
            self.kafka.bootstrap_servers = f"localhost:{self.local_kafka.port}"
        return self

    @model_validator(mode="after")
    def _cloud_profile(self) -> Settings:
        if self.profile == "cloud":
            if self.warehouse.backend != "snowflake":
                raise ValueError("profile=cloud needs warehouse.backend=snowflake")
            if self.kafka.security_protocol != "SASL_SSL":
                raise ValueError("profile=cloud needs kafka.security_protocol=SASL_SSL")
        return self

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def warehouse_dir(self) -> Path:
        return self.home_dir / "warehouse"

    @property
    def lake_dir(self) -> Path:
        return self.home_dir / "lake"

    @property
    def kafka_dir(self) -> Path:
        return self.home_dir / "kafka"

    @property
    def dbt_docs_dir(self) -> Path:
        """dbt's docs site, beside the Great Expectations Data Docs."""
        return self.home_dir / "data-docs" / "dbt"

    @property
    def marts_snapshot_dir(self) -> Path:
        """The embedded warehouse's read-only copy of the marts (dashboard, report)."""
        return self.home_dir / "marts-snapshot"

    @property
    def report_dir(self) -> Path:
        """The static HTML report with the dashboard's charts, beside the Data Docs."""
        return self.home_dir / "data-docs" / "report"

    @property
    def validation_record(self) -> Path:
        """The latest validation's outcome as JSON, beside its Data Docs."""
        return self.home_dir / "data-docs" / "validation.json"

    @property
    def dbt_dir(self) -> Path:
        """The trend build's dbt profile, target (manifest, docs) and logs."""
        if self.trends.dbt_dir is not None:
            return self.trends.dbt_dir.expanduser().resolve()
        return self.home_dir / "dbt"


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part) for part in loc).upper()


# STOCKPIPE_* variables that are not settings: prefect.yaml's pull step reads the first,
# the browser test the second.
NOT_SETTINGS = frozenset({"STOCKPIPE_PROJECT_DIR", "STOCKPIPE_TEST_ARTIFACTS"})


def setting_names(model: type[BaseModel] | None = None, prefix: str = ENV_PREFIX) -> set[str]:
    """Every environment variable a setting is read from (``STOCKPIPE_KAFKA__PRICES_TOPIC``)."""
    model = model or Settings
    names = set()
    for field, info in model.model_fields.items():
        name = prefix + field.upper()
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= setting_names(kind, name + ENV_NESTED_DELIMITER)
        else:
            names.add(name)
    return names


def unknown_variables(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> list[str]:
    """A line for each ``STOCKPIPE_*`` variable that no setting reads (a misspelling is
    otherwise silently ignored), with the nearest valid name: in the environment, and in
    ``env_file`` (the ``.env`` the settings read, in the current directory)."""
    from dotenv import dotenv_values

    sources = [("", os.environ if environ is None else environ)]
    if env_file is not None and env_file.is_file():
        sources.append((f" (in {env_file.resolve()})", dotenv_values(env_file)))
    known = setting_names()
    lines = []
    for where, names in sources:
        for name in sorted(names):
            upper = name.upper()
            if not upper.startswith(ENV_PREFIX) or upper in known or upper in NOT_SETTINGS:
                continue
            nearest = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
            hint = (
                f"; did you mean {nearest[0]}?" if nearest else " ('stockpipe config' lists them)"
            )
            lines.append(f"{name}{where} is not a setting and is ignored{hint}")
    return lines


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, or fail with the names of the settings that are wrong.

    Args:
        overrides: field values that win over the environment (used by the CLI and tests).

    Raises:
        ConfigError: naming each bad environment variable and what it expects.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if part != "__root__")
            name = _env_name(loc) if loc else "STOCKPIPE_* settings"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"  {name}: {message}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def validate_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise ConfigError."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"{name!r} is not a plain SQL identifier")
    return name
