"""The local broker's server.properties: its own PLAINTEXT listeners, then the kafka role's
storage, topic defaults and tuning (the role's broker.properties.j2, rendered by both), so a
change to the VM's broker reaches the one every test and the demo run."""

from __future__ import annotations

from pathlib import Path

from stockpipe.local_stack.broker import LocalBroker

ROLE_SHARED = Path(__file__).parents[2] / "ansible/roles/kafka/templates/broker.properties.j2"


def _properties(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_one_node_is_its_own_quorum_and_keeps_one_copy(tmp_path: Path) -> None:
    config = _properties(LocalBroker(tmp_path, port=19092, controller_port=19093).render_config())
    assert config["controller.quorum.bootstrap.servers"] == "localhost:19093"
    assert config["listeners"] == "PLAINTEXT://localhost:19092,CONTROLLER://localhost:19093"
    assert config["process.roles"] == "broker,controller"
    assert config["log.dirs"] == str(tmp_path / "data")
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == ("1", "1")
    assert config["auto.create.topics.enable"] == "false"


def test_a_node_of_three_replicates_like_the_vms(tmp_path: Path) -> None:
    voters = [(1, 19093), (2, 19193), (3, 19293)]
    broker = LocalBroker(tmp_path, port=19192, controller_port=19193, node_id=2, voters=voters)
    config = _properties(broker.render_config())
    assert config["controller.quorum.voters"] == (
        "1@localhost:19093,2@localhost:19193,3@localhost:19293"
    )
    assert config["node.id"] == "2"
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == ("3", "2")
    assert config["transaction.state.log.min.isr"] == "2"


def test_every_setting_of_the_roles_shared_part_reaches_the_local_broker(tmp_path: Path) -> None:
    shared = {
        line.split("=", 1)[0]
        for line in ROLE_SHARED.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith(("#", "{"))
    }
    config = _properties(LocalBroker(tmp_path).render_config())
    assert shared and shared <= config.keys()
    assert config["num.io.threads"] == "2"  # the role's small-machine tuning
