"""The kafka role, run for real on this machine, and the broker its files describe.

The role downloads the release from a local mirror (a tarball in Apache's layout built from
the Maven Central jars, checked against its SHA-512 like the real one) and the JMX agent
(checked against the SHA-256 pinned in the role's defaults), makes the CA and certificates
with community.crypto, renders server.properties and the systemd unit, and formats the
storage. The test then starts the broker with the unit's own ExecStart (no systemd here),
runs the role again to create SCRAM users, topics and ACLs, and talks to the SASL_SSL listener
as the pipeline's users, as strangers and as unauthenticated clients.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import ssl
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from stockpipe.drain import drain_prices
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import KafkaSettings, load_settings
from stockpipe.streaming.kafka import topology
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.ansible.conftest import kafka_pipeline_vars
from tests.ansible.playbook import run_playbook, unit_exposure
from tests.support import distinct_bar_messages, prerequisite, warehouse_state_of

PLAYBOOK = str(Path(__file__).parent / "playbooks" / "kafka_local.yml")
# A system user of this run alone: two runs on one machine must not delete each other's.
KAFKA_USER = f"stockpipe-kafka-{os.getpid()}"
PASSWORDS = {
    "stockpipe-producer": "producer-secret-1",
    "stockpipe-drain": "drain-secret-2",
    "stockpipe-alerts": "alerts-secret-3",
    "stockpipe-worker": "worker-secret-4",
}
BROKER_PASSWORD = "broker-secret-00"
VERSION = "4.1.2"

pytestmark = prerequisite(os.geteuid() != 0, "the role creates a system user: run as root")


@pytest.fixture(scope="module")
def role(kafka_downloads, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("vm")
    (root / "etc/systemd/system").mkdir(parents=True)  # there on every Debian host
    # What an earlier version of the role left: the CA certificate in the system's
    # certificate directory and the CA key on the node. The role removes both.
    (root / "etc/ssl/certs").mkdir(parents=True)
    (root / "etc/ssl/certs/stockpipe-kafka-ca.pem").write_text("an old CA certificate\n")
    (root / "etc/kafka/tls").mkdir(parents=True)
    (root / "etc/kafka/tls/ca.key").write_text("an old CA key\n")
    ports = {
        "local": free_port(),
        "controller": free_port(),
        "external": free_port(),
        "jmx": free_port(),
    }
    names = {
        "topic": "stock_prices",
        "dlq": "stock_prices_dlq",
        "alerts": "stock_alerts",
        "group": "stockpipe-drain",
    }
    variables = {
        **kafka_downloads,
        "kafka_user": KAFKA_USER,
        "kafka_group": KAFKA_USER,
        "kafka_install_dir": str(root / "opt"),
        "kafka_config_dir": str(root / "etc/kafka"),
        "kafka_data_dir": str(root / "var/lib/kafka/data"),
        "kafka_log_dir": str(root / "var/log/kafka"),
        "kafka_systemd_dir": str(root / "etc/systemd/system"),
        "kafka_service_enabled": False,
        "kafka_local_port": ports["local"],
        "kafka_controller_port": ports["controller"],
        "kafka_external_port": ports["external"],
        "kafka_external_listen_address": "127.0.0.1",
        "kafka_advertised_host": "localhost",
        "kafka_jmx_exporter_port": ports["jmx"],
        "kafka_ca_fetch_dest": str(root / "control/kafka-ca.pem"),
        "kafka_tls_ca_control_dir": str(root / "control/ca"),
        "kafka_tls_ca_public_path": str(root / "etc/stockpipe-kafka/ca.pem"),
        "kafka_tls_retired_ca_paths": [str(root / "etc/ssl/certs/stockpipe-kafka-ca.pem")],
        "kafka_keystore_password": "keystore-secret-0",
        "kafka_inter_broker_password": BROKER_PASSWORD,
        "kafka_scram_users": [{"name": n, "password": p} for n, p in PASSWORDS.items()],
        **kafka_pipeline_vars(),
    }
    yield root, ports, names, ["-e", json.dumps(variables)]
    subprocess.run(["userdel", KAFKA_USER], check=False, capture_output=True)
    subprocess.run(["groupdel", KAFKA_USER], check=False, capture_output=True)


@pytest.fixture(scope="module")
def broker(role):
    """Files from the role, then the broker started by the unit's ExecStart, then access."""
    root, ports, names, args = role
    files = run_playbook(PLAYBOOK, *args, "--skip-tags", "kafka_service,kafka_access")
    assert files.returncode == 0, files.failures() or files.output[-4000:]

    unit = (root / "etc/systemd/system/kafka.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    log = open(root / "broker.out", "wb")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        shlex.split(exec_start.removeprefix("ExecStart=")), stdout=log, stderr=subprocess.STDOUT
    )
    # Only what the first run left out: the second-run test runs the whole role again.
    access = run_playbook(PLAYBOOK, *args, "--tags", "kafka_service,kafka_access")
    assert access.returncode == 0, access.failures() or access.output[-4000:]
    yield root, ports, names, args, files, access
    process.terminate()
    process.wait(60)
    log.close()


def _settings(monkeypatch, ports, user: str | None, password: str | None, ca: Path, names, tmp):
    env = {
        "STOCKPIPE_HOME": str(tmp / "home"),
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": f"localhost:{ports['external']}",
        "STOCKPIPE_KAFKA__PRICES_TOPIC": names["topic"],
        "STOCKPIPE_KAFKA__DLQ_TOPIC": names["dlq"],
        "STOCKPIPE_KAFKA__ALERTS_TOPIC": names["alerts"],
        "STOCKPIPE_KAFKA__CONSUMER_GROUP": names["group"],
        "STOCKPIPE_DRAIN__MAX_WAIT_SECONDS": "2",
    }
    if user:
        env |= {
            "STOCKPIPE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "STOCKPIPE_KAFKA__SASL_USERNAME": user,
            "STOCKPIPE_KAFKA__SASL_PASSWORD": password or "",
            "STOCKPIPE_KAFKA__SSL_CA_LOCATION": str(ca),
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_the_role_installs_what_it_downloaded_and_checked(broker):
    root, ports, names, _args, files, access = broker
    home = root / "opt/kafka"
    assert home.is_symlink() and home.resolve().name == f"kafka_2.13-{VERSION}"
    assert (root / "opt/jmx_prometheus_javaagent-1.0.1.jar").exists()
    properties = (root / "etc/kafka/server.properties").read_text()
    assert "EXTERNAL:SASL_SSL" in properties
    # No anonymous access anywhere: loopback authenticates too, one super user.
    assert "LOCAL:SASL_PLAINTEXT" in properties and "CONTROLLER:SASL_PLAINTEXT" in properties
    assert "ANONYMOUS" not in properties
    assert re.search(r"(?<!SASL_)PLAINTEXT", properties) is None
    assert "super.users=User:stockpipe-broker\n" in properties
    # The storage, topic defaults and small-machine tuning every broker shares (the local
    # broker renders the same file): included, rendered with the role's values.
    assert "auto.create.topics.enable=false" in properties
    assert "num.io.threads=2" in properties and "node.id=1" in properties
    assert f"log.dirs={root}/var/lib/kafka/data" in properties
    assert (
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        in properties
    )
    assert (root / "etc/kafka/server.properties").stat().st_mode & 0o777 == 0o640
    # No secret in what ansible-playbook prints (here the JSON callback: every result in full).
    leaks = [
        line.strip() for line in (files.output + access.output).splitlines() if "-secret-" in line
    ]
    assert leaks == []
    # ConfigCommand read the SCRAM passwords from root-only files (its command line, printed
    # in full above, holds only their paths), and none is left behind.
    assert "--add-config-file" in access.output
    assert not list((root / "etc/kafka").glob("scram-*.properties"))
    # The unit's sandbox (ProtectSystem=strict and the rest of prometheus-community's set).
    assert unit_exposure(root / "etc/systemd/system/kafka.service") <= 2.0
    # The CA's key is on the control machine alone (0600 in a 0700 directory); the node has
    # the CA certificate, outside the system's certificate directory.
    keys = sorted(str(path.relative_to(root)) for path in root.rglob("ca.key"))
    assert keys == ["control/ca/ca.key"]
    assert (root / "control/ca").stat().st_mode & 0o777 == 0o700
    assert (root / "control/ca/ca.key").stat().st_mode & 0o777 == 0o600
    ca = (root / "control/ca/ca.crt").read_bytes()
    assert (root / "etc/stockpipe-kafka/ca.pem").read_bytes() == ca
    assert (root / "control/kafka-ca.pem").read_bytes() == ca
    assert not (root / "etc/ssl/certs/stockpipe-kafka-ca.pem").exists()
    meta = (root / "var/lib/kafka/data/meta.properties").read_text()
    assert "cluster.id=" in meta
    # The admin tools start from the class-data archive the role made for this JVM and
    # release (-Xshare:on refuses to start without a usable one), and print what they did.
    assert any("Archive the classes" in name for name in access.changed_tasks())
    tool = [
        "java", "-Xshare:on", f"-XX:SharedArchiveFile={home}/admin-tools.jsa",
        "-Xlog:disable", "-Xlog:all=warning:stderr", "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1", "-cp", f"{home}/libs/*",
    ]  # fmt: skip
    admin = ["--bootstrap-server", f"127.0.0.1:{ports['local']}"]
    admin += ["--command-config", str(root / "etc/kafka/admin.properties")]
    listed = subprocess.run(
        [*tool, "org.apache.kafka.tools.TopicCommand", *admin, "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert names["topic"] in listed.stdout.split()


def test_the_pipeline_users_produce_and_drain_over_sasl_ssl(broker, monkeypatch, tmp_path):
    root, ports, names, *_ = broker
    ca = root / "control/kafka-ca.pem"
    producer_settings = _settings(
        monkeypatch,
        ports,
        "stockpipe-producer",
        PASSWORDS["stockpipe-producer"],
        ca,
        names,
        tmp_path,
    )
    producer = Producer(producer_settings.kafka.client_config())
    for key, value in distinct_bar_messages(300, symbols=10):
        producer.produce(names["topic"], value, key)
    producer.produce(names["topic"], b"{not json", b"BAD")  # must reach the DLQ
    assert producer.flush(60) == 0

    drain_settings = _settings(
        monkeypatch, ports, "stockpipe-drain", PASSWORDS["stockpipe-drain"], ca, names, tmp_path
    )
    with Warehouse.connect(drain_settings, "setup") as warehouse:
        setup_warehouse(warehouse, drain_settings)
        report = drain_prices(drain_settings, warehouse)
        rows, keys, _ = warehouse_state_of(warehouse, names["topic"])
    assert (rows, keys) == (300, 300)
    assert sum(report.rejected.values()) == 1  # written to the DLQ under the drain's ACL

    # The JMX agent in the broker's JVM answers on loopback.
    import httpx

    metrics = httpx.get(f"http://127.0.0.1:{ports['jmx']}/metrics", timeout=10).text
    assert "kafka_server" in metrics


def _refused(config: dict, action) -> str:
    """ "allowed", or the error code that refused ``action``: the client's own error (an
    authentication failure is reported there, while the message only times out) before the
    request's."""
    seen: list[KafkaError] = []
    try:
        action(config | {"error_cb": seen.append})
    except KafkaException as exc:
        refused = [e for e in seen if e.code() in AUTHENTICATION_ERRORS]
        return (refused[0] if refused else exc.args[0]).name()
    return "allowed"


# librdkafka reports a failed SASL handshake as _AUTHENTICATION; the broker's own code is
# SASL_AUTHENTICATION_FAILED.
AUTHENTICATION_ERRORS = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}


def _produce(topic, config):
    producer = Producer(config | {"message.timeout.ms": 8000, "retries": 0})
    errors = []
    producer.produce(topic, b"x", b"k", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(15)
    if errors and errors[0] is not None:
        raise KafkaException(errors[0])
    if not errors:
        raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT))


def _consume(topic, group, config):
    consumer = Consumer(config | {"group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            return
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
    finally:
        consumer.close()


def test_strangers_and_users_without_an_acl_are_refused(broker, monkeypatch, tmp_path):
    root, ports, names, *_ = broker
    ca = root / "control/kafka-ca.pem"

    def config(user, password):
        return _settings(
            monkeypatch, ports, user, password, ca, names, tmp_path
        ).kafka.client_config()

    producer = config("stockpipe-producer", PASSWORDS["stockpipe-producer"])
    drain = config("stockpipe-drain", PASSWORDS["stockpipe-drain"])
    alerts = config("stockpipe-alerts", PASSWORDS["stockpipe-alerts"])

    assert _refused(producer, partial(_produce, names["topic"])) == "allowed"
    # The producer may not read prices, the drain may not write them, alerts may not touch them.
    assert _refused(producer, partial(_consume, names["topic"], names["group"])) in {
        "TOPIC_AUTHORIZATION_FAILED",
        "GROUP_AUTHORIZATION_FAILED",
    }
    assert _refused(drain, partial(_produce, names["topic"])) == "TOPIC_AUTHORIZATION_FAILED"
    assert _refused(alerts, partial(_produce, names["topic"])) == "TOPIC_AUTHORIZATION_FAILED"
    assert _refused(alerts, partial(_produce, names["alerts"])) == "allowed"
    # The drain reads only in its own group.
    assert (
        _refused(drain, partial(_consume, names["topic"], "another-group"))
        == "GROUP_AUTHORIZATION_FAILED"
    )

    # Each refusal is the broker's answer (the same listener just served the users above):
    # a dead broker or a timeout would name another code.
    wrong_password = config("stockpipe-producer", "not-the-password")
    assert _refused(wrong_password, partial(_produce, names["topic"])) in {
        "_AUTHENTICATION",
        "SASL_AUTHENTICATION_FAILED",
    }
    stranger = config("someone-else", "any-password")  # TLS and SCRAM, but no such user
    assert _refused(stranger, partial(_produce, names["topic"])) in {
        "_AUTHENTICATION",
        "SASL_AUTHENTICATION_FAILED",
    }
    # Without TLS and SASL nothing gets through, from a listener that is up: it completes a
    # TLS handshake with the CA's certificate (a dead broker would refuse the connection).
    plain = {"bootstrap.servers": f"localhost:{ports['external']}", "socket.timeout.ms": 5000}
    assert _refused(plain, partial(_produce, names["topic"])) != "allowed"
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("localhost", ports["external"]), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}


def test_local_processes_log_in_on_loopback_and_get_only_their_acls(broker, tmp_path):
    """The VM's flows reach their broker on loopback as the worker user (the settings the
    playbook gives them): its ACLs bind them there too. A local process without credentials
    (any account on the node can open the socket) gets nothing from the broker or the
    controller, nor does one with a wrong password, and the worker is no super user."""
    root, ports, names, *_ = broker
    loopback = f"127.0.0.1:{ports['local']}"

    anonymous = {"bootstrap.servers": loopback, "socket.timeout.ms": 5000}
    with pytest.raises(KafkaException):
        AdminClient(anonymous).list_topics(timeout=5)
    # The controller, through Kafka's own tool (librdkafka cannot talk to a controller):
    # without credentials it does not answer, as the broker identity it does (so it is up).
    quick = tmp_path / "quick.properties"
    quick.write_text("request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n")
    identity = tmp_path / "identity.properties"
    identity.write_text((root / "etc/kafka/admin.properties").read_text() + quick.read_text())
    quorum = [
        "java", "-cp", f"{root}/opt/kafka/libs/*", "org.apache.kafka.tools.MetadataQuorumCommand",
        "--bootstrap-controller", f"127.0.0.1:{ports['controller']}",
    ]  # fmt: skip
    status = [*quorum, "--command-config", str(quick), "describe", "--status"]
    refused = subprocess.run(status, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "LeaderId" not in refused.stdout
    status = [*quorum, "--command-config", str(identity), "describe", "--status"]
    answered = subprocess.run(status, capture_output=True, text=True, timeout=120, check=False)
    assert answered.returncode == 0 and "LeaderId" in answered.stdout, answered.stderr[-2000:]

    def worker(password: str) -> dict:
        return KafkaSettings(
            bootstrap_servers=loopback,
            security_protocol="SASL_PLAINTEXT",
            sasl_username="stockpipe-worker",
            sasl_password=password,
        ).client_config()

    flows = worker(PASSWORDS["stockpipe-worker"])
    assert _refused(flows, partial(_produce, names["topic"])) == "allowed"
    live_group = topology()["consumer_groups"]["live"]  # the live tier's, as the worker
    assert _refused(flows, partial(_consume, names["topic"], live_group)) == "allowed"
    assert (
        _refused(flows, partial(_consume, names["topic"], "another-group"))
        == "GROUP_AUTHORIZATION_FAILED"
    )
    # The same listener that just served the worker refuses a wrong password at login.
    assert _refused(worker("not-the-password"), partial(_produce, names["topic"])) in {
        "_AUTHENTICATION",
        "SASL_AUTHENTICATION_FAILED",
    }


def test_a_second_run_of_the_role_changes_nothing(broker):
    *_, args, files, access = broker
    assert files.changed() > 0 and access.changed() > 0

    again = run_playbook(PLAYBOOK, *args)

    assert again.returncode == 0, again.failures()
    assert again.changed() == 0, again.changed_tasks()
