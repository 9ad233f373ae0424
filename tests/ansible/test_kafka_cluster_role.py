"""The kafka role with three hosts in its cluster group, run for real on this machine: three
nodes, each with its own directories and ports on loopback (standing in for three VMs and
their VPC addresses), one CA on the first node signing every node's certificate, one static
controller quorum, replication and the controller quorum over SASL_SSL between the nodes.

The test starts each broker from its unit's ExecStart (no systemd here) and runs the role
again for the cluster's users, topics (three replicas, min.insync.replicas 2) and ACLs; the
pipeline's users then produce and drain over SASL_SSL while a node is down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from stockpipe.drain import drain_prices
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import load_settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.ansible.conftest import kafka_pipeline_vars
from tests.ansible.playbook import UnitCommand, run_playbook
from tests.support import distinct_bar_messages, prerequisite, warehouse_state_of

PLAYBOOK = str(Path(__file__).parent / "playbooks" / "kafka_cluster_local.yml")
PASSWORDS = {
    "stockpipe-producer": "producer-secret-1",
    "stockpipe-drain": "drain-secret-2",
    "stockpipe-alerts": "alerts-secret-3",
    "stockpipe-worker": "worker-secret-4",
}
BROKER_PASSWORD = "broker-secret-00"
NAMES = {
    "topic": "stock_prices",
    "dlq": "stock_prices_dlq",
    "alerts": "stock_alerts",
    "group": "stockpipe-drain",
}
NODES = ("kafka-1", "kafka-2", "kafka-3")


def system_user(node: str) -> str:
    """The node's system user, of this run alone: two runs on one machine must not delete
    each other's."""
    return f"stockpipe-{node}-{os.getpid()}"


pytestmark = prerequisite(os.geteuid() != 0, "the role creates a system user: run as root")


@pytest.fixture(scope="module")
def inventory(kafka_downloads, tmp_path_factory: pytest.TempPathFactory):
    """An inventory of three nodes on this machine; yields (root, ports by node, path)."""
    root = tmp_path_factory.mktemp("cluster")
    ports = {
        node: {name: free_port() for name in ("local", "controller", "external", "internal", "jmx")}
        for node in NODES
    }
    hosts = {}
    for node in NODES:
        base = root / node
        (base / "etc/systemd/system").mkdir(parents=True)
        hosts[node] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            # One system user per node: each has its own home (the data directory).
            "kafka_user": system_user(node),
            "kafka_group": system_user(node),
            "kafka_install_dir": str(base / "opt"),
            "kafka_config_dir": str(base / "etc/kafka"),
            "kafka_tls_dir": str(base / "etc/kafka/tls"),
            "kafka_data_dir": str(base / "var/lib/kafka/data"),
            "kafka_log_dir": str(base / "var/log/kafka"),
            "kafka_systemd_dir": str(base / "etc/systemd/system"),
            "kafka_tls_ca_public_path": str(base / "etc/stockpipe-kafka/ca.pem"),
            "kafka_tls_retired_ca_paths": [],
            "kafka_internal_address": "127.0.0.1",
            "kafka_local_port": ports[node]["local"],
            "kafka_controller_port": ports[node]["controller"],
            "kafka_external_port": ports[node]["external"],
            "kafka_internal_port": ports[node]["internal"],
            "kafka_jmx_exporter_port": ports[node]["jmx"],
        }
    group_vars = {
        **kafka_downloads,
        "kafka_service_enabled": False,
        "kafka_heap_size": "256m",
        "kafka_external_listen_address": "127.0.0.1",
        "kafka_advertised_host": "localhost",
        "kafka_ca_fetch_dest": str(root / "control/kafka-ca.pem"),
        "kafka_tls_ca_control_dir": str(root / "control/ca"),
        "kafka_keystore_password": "keystore-secret-0",
        "kafka_inter_broker_password": BROKER_PASSWORD,
        "kafka_scram_users": [{"name": n, "password": p} for n, p in PASSWORDS.items()],
        **kafka_pipeline_vars(),
    }
    path = root / "inventory.yml"
    path.write_text(yaml.safe_dump({"kafka": {"hosts": hosts, "vars": group_vars}}))
    yield root, ports, path
    for node in NODES:
        subprocess.run(["userdel", system_user(node)], check=False, capture_output=True)
        subprocess.run(["groupdel", system_user(node)], check=False, capture_output=True)


@pytest.fixture(scope="module")
def cluster(inventory):
    """Files from the role on every node, the three brokers started from their units, then
    the cluster's users, topics and ACLs; yields (root, ports, first run, access run, nodes)."""
    root, ports, path = inventory
    args = ["-i", str(path)]
    files = run_playbook(PLAYBOOK, *args, "--skip-tags", "kafka_service,kafka_access")
    assert files.returncode == 0, files.failures() or files.output[-4000:]
    nodes = {}
    for node in NODES:
        unit = root / node / "etc/systemd/system/kafka.service"
        command = UnitCommand.of(unit)
        command.user = command.group = None  # as root, like the single-node role test
        nodes[node] = (command, command.start(root / f"{node}.out"))
    for node in NODES:
        _wait_for_node(root, ports[node]["local"], {n: p for n, (_c, p) in nodes.items()})
    # Only what the first run left out: the second-run test runs the whole role again.
    access = run_playbook(PLAYBOOK, *args, "--tags", "kafka_service,kafka_access")
    assert access.returncode == 0, access.failures() or access.output[-4000:]
    yield root, ports, files, access, nodes, args
    for _command, process in nodes.values():
        process.terminate()
    for _command, process in nodes.values():
        process.wait(120)


def _as_broker(local_port: int) -> dict:
    """librdkafka settings for a node's loopback listener as the broker identity (the one
    super user; loopback takes no anonymous client)."""
    return {
        "bootstrap.servers": f"127.0.0.1:{local_port}",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "stockpipe-broker",
        "sasl.password": BROKER_PASSWORD,
    }


def _wait_for_node(root: Path, port: int, processes: dict[str, subprocess.Popen]) -> None:
    """Until the node answers on loopback with the whole cluster in its metadata; fails as
    soon as any node has exited, with that node's server log."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for node, process in processes.items():
            assert process.poll() is None, f"{node} exited:\n" + _server_log(root, node)
        try:
            brokers = AdminClient(_as_broker(port)).list_topics(timeout=2)
            if len(brokers.brokers) == len(NODES):
                return
        except KafkaException:
            pass
        time.sleep(0.5)
    pytest.fail(
        "the cluster did not form:\n"
        + "\n".join(f"== {node}\n{_server_log(root, node)}" for node in NODES)
    )


def _server_log(root: Path, node: str) -> str:
    """The end of a node's log (the unit's output has nothing: log4j writes to the file)."""
    log = root / node / "var/log/kafka/server.log"
    return log.read_text()[-3000:] if log.exists() else f"(no {log})"


def _user_settings(monkeypatch, root: Path, ports, user: str, tmp_path: Path):
    servers = ",".join(f"localhost:{ports[node]['external']}" for node in NODES)
    env = {
        "STOCKPIPE_HOME": str(tmp_path / "home"),
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": servers,
        "STOCKPIPE_KAFKA__PRICES_TOPIC": NAMES["topic"],
        "STOCKPIPE_KAFKA__DLQ_TOPIC": NAMES["dlq"],
        "STOCKPIPE_KAFKA__ALERTS_TOPIC": NAMES["alerts"],
        "STOCKPIPE_KAFKA__CONSUMER_GROUP": NAMES["group"],
        "STOCKPIPE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "STOCKPIPE_KAFKA__SASL_USERNAME": user,
        "STOCKPIPE_KAFKA__SASL_PASSWORD": PASSWORDS[user],
        "STOCKPIPE_KAFKA__SSL_CA_LOCATION": str(root / "control/kafka-ca.pem"),
        "STOCKPIPE_DRAIN__MAX_WAIT_SECONDS": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_one_ca_signs_every_node_and_one_quorum_holds_them(cluster) -> None:
    root, _ports, files, access, *_ = cluster
    ca = (root / "control/ca/ca.crt").read_bytes()
    assert (root / "control/kafka-ca.pem").read_bytes() == ca
    for node in NODES:
        assert (root / node / "etc/kafka/tls/ca.crt").read_bytes() == ca
        assert (root / node / "etc/stockpipe-kafka/ca.pem").read_bytes() == ca
        properties = (root / node / "etc/kafka/server.properties").read_text()
        assert f"node.id={NODES.index(node) + 1}" in properties
        assert "inter.broker.listener.name=INTERNAL" in properties
        assert "CONTROLLER:SASL_SSL" in properties and "INTERNAL:SASL_SSL" in properties
    # The CA's key signed every node's certificate from the control machine and is on no node.
    assert sorted(str(p.relative_to(root)) for p in root.rglob("ca.key")) == ["control/ca/ca.key"]
    voters = {
        line
        for node in NODES
        for line in (root / node / "etc/kafka/server.properties").read_text().splitlines()
        if line.startswith("controller.quorum.voters=")
    }
    assert len(voters) == 1  # the same quorum everywhere
    cluster_ids = {
        line
        for node in NODES
        for line in (root / node / "var/lib/kafka/data/meta.properties").read_text().splitlines()
        if line.startswith("cluster.id=")
    }
    assert len(cluster_ids) == 1
    leaks = [
        line.strip() for line in (files.output + access.output).splitlines() if "-secret-" in line
    ]
    assert leaks == []


def test_the_topics_have_three_replicas_two_of_them_in_sync_for_a_write(cluster) -> None:
    _root, ports, *_ = cluster
    admin = AdminClient(_as_broker(ports["kafka-1"]["local"]))
    topics = admin.list_topics(timeout=10).topics
    for name in NAMES.values():
        if name == NAMES["group"]:
            continue
        assert all(sorted(p.replicas) == [1, 2, 3] for p in topics[name].partitions.values())
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        config = admin.describe_configs([resource])[resource].result(10)
        assert config["min.insync.replicas"].value == "2", name


def test_the_nodes_listener_refuses_clients_without_credentials(cluster) -> None:
    root, ports, *_ = cluster
    tls = {
        "bootstrap.servers": f"127.0.0.1:{ports['kafka-2']['internal']}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(root / "control/kafka-ca.pem"),
        "socket.timeout.ms": 5000,
    }
    # The listener is up and serves a user with credentials (a dead node would refuse both)
    # ...
    member = AdminClient(
        tls
        | {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "stockpipe-producer",
            "sasl.password": PASSWORDS["stockpipe-producer"],
        }
    )
    assert len(member.list_topics(timeout=30).brokers) == len(NODES)
    # ... and not a client without them, nor does loopback (which serves the broker identity).
    with pytest.raises(KafkaException):
        Producer(tls).list_topics(timeout=5)
    assert len(AdminClient(_as_broker(ports["kafka-2"]["local"])).list_topics(timeout=30).brokers)
    anonymous = {"bootstrap.servers": f"127.0.0.1:{ports['kafka-2']['local']}"}
    with pytest.raises(KafkaException):
        Producer(anonymous | {"socket.timeout.ms": 5000}).list_topics(timeout=5)


def test_the_pipeline_produces_and_drains_with_a_node_down(
    cluster, monkeypatch, tmp_path: Path
) -> None:
    root, ports, _files, _access, nodes, _args = cluster
    producer_settings = _user_settings(monkeypatch, root, ports, "stockpipe-producer", tmp_path)
    QuoteProducer(producer_settings.kafka).publish_raw(
        (k, v, None) for k, v in distinct_bar_messages(2_000, symbols=20)
    )
    # The node leading the first partition goes down (SIGKILL); the rest keep two in sync.
    admin = AdminClient(_as_broker(ports["kafka-1"]["local"]))
    leader = admin.list_topics(NAMES["topic"], timeout=10).topics[NAMES["topic"]].partitions[0]
    victim = NODES[leader.leader - 1]
    command, process = nodes[victim]
    process.kill()
    process.wait()
    QuoteProducer(producer_settings.kafka).publish_raw(
        (k, v, None) for k, v in distinct_bar_messages(2_000, symbols=20, start=2_000)
    )

    drain_settings = _user_settings(monkeypatch, root, ports, "stockpipe-drain", tmp_path)
    with Warehouse.connect(drain_settings, "setup") as warehouse:
        setup_warehouse(warehouse, drain_settings)
        drain_prices(drain_settings, warehouse)
        rows, keys, _ = warehouse_state_of(warehouse, NAMES["topic"])
    assert (rows, keys) == (4_000, 4_000)

    nodes[victim] = (command, command.start(root / f"{victim}.restarted.out"))
    _wait_for_node(root, ports[victim]["local"], {n: p for n, (_c, p) in nodes.items()})
    reader = Consumer(_as_broker(ports["kafka-1"]["local"]) | {"group.id": "count"})
    partitions = admin.list_topics(NAMES["topic"], timeout=10).topics[NAMES["topic"]].partitions
    logged = 0
    for partition in partitions:
        low, high = reader.get_watermark_offsets(TopicPartition(NAMES["topic"], partition), 10)
        logged += high - low
    reader.close()
    assert logged == 4_000  # each bar once in the log


def test_a_second_run_of_the_role_changes_nothing(cluster) -> None:
    *_, files, access, _nodes, args = cluster
    assert all(files.changed(node) > 0 for node in NODES)
    assert access.changed("kafka-1") > 0  # the cluster's users, topics, ACLs: from node 1

    again = run_playbook(PLAYBOOK, *args)

    assert again.returncode == 0, again.failures()
    assert [again.changed(node) for node in NODES] == [0, 0, 0], again.changed_tasks()
