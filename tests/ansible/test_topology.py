"""The pipeline's Kafka topology has one source (stockpipe/streaming/kafka/topology.yml) that
stockpipe and the playbook both read: what each makes of it agrees."""

from __future__ import annotations

import pytest

from stockpipe.settings import KafkaSettings, load_settings
from stockpipe.streaming.kafka import topology
from stockpipe.streaming.topics import pipeline_topics
from tests.ansible.conftest import group_vars


def test_stockpipe_defaults_to_the_topologys_names_partitions_and_retention() -> None:
    declared = topology()
    kafka = KafkaSettings()
    names = {
        "prices": kafka.prices_topic,
        "alerts": kafka.alerts_topic,
        "dead_letters": kafka.dlq_topic,
        "forming": kafka.forming_topic,
    }
    assert names == {role: t["name"] for role, t in declared["topics"].items()}
    assert kafka.prices_partitions == declared["topics"]["prices"]["partitions"]
    assert (kafka.consumer_group, kafka.live_consumer_group) == (
        declared["consumer_groups"]["drain"],
        declared["consumer_groups"]["live"],
    )
    made = {t.name: (t.partitions, int(t.config["retention.ms"])) for t in pipeline_topics(kafka)}
    assert made == {
        t["name"]: (t["partitions"], t["retention_ms"]) for t in declared["topics"].values()
    }


def test_one_node_gets_the_topologys_topics_users_and_acls() -> None:
    rendered = group_vars(1, "kafka_topics", "kafka_acls", "_kafka_users")
    declared = topology()
    worker = declared["users"]["worker"]
    assert rendered["kafka_topics"] == list(declared["topics"].values())
    pipeline = [acl for acl in rendered["kafka_acls"] if acl["principal"] != worker]
    assert pipeline == declared["acls"]
    assert rendered["_kafka_users"] == declared["users"]
    # Every group and topic the ACLs name is one the topology defines.
    topics = {t["name"] for t in declared["topics"].values()}
    groups = set(declared["consumer_groups"].values())
    for acl in declared["acls"]:
        assert acl["name"] in (topics if acl["resource_type"] == "topic" else groups), acl


def grants(acls: list[dict], principal: str | None = None) -> set[tuple]:
    return {
        (acl["resource_type"], acl["name"], operation)
        for acl in acls
        if principal is None or acl["principal"] == principal
        for operation in acl["operations"]
    }


@pytest.mark.parametrize("nodes", [1, 3])
def test_the_vms_flows_log_in_as_the_worker_with_every_pipeline_right_and_no_other(
    nodes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No process on the VM reaches Kafka anonymously: the flows and the live tier log in as
    the worker user, over loopback (SASL_PLAINTEXT) on one node and over the nodes' INTERNAL
    listener (SASL_SSL) in a cluster, and the user has the pipeline's rights, nothing more."""
    declared = topology()
    worker = declared["users"]["worker"]
    rendered = group_vars(
        nodes,
        "kafka_acls",
        "kafka_scram_users",
        "prefect_worker_environment",
        "stockpipe_live_environment",
    )
    assert grants(rendered["kafka_acls"], worker) == grants(declared["acls"])
    assert worker in {user["name"] for user in rendered["kafka_scram_users"]}
    flows, live = rendered["prefect_worker_environment"], rendered["stockpipe_live_environment"]
    for environment in (flows, live):
        assert environment["STOCKPIPE_KAFKA__SASL_USERNAME"] == worker
        assert environment["STOCKPIPE_KAFKA__SASL_PASSWORD"] == "CHANGE-ME-worker"
        settings = KafkaSettings(
            bootstrap_servers=environment["STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"],
            security_protocol=environment["STOCKPIPE_KAFKA__SECURITY_PROTOCOL"],
            sasl_username=worker,
            sasl_password=environment["STOCKPIPE_KAFKA__SASL_PASSWORD"],
        )  # the settings accept what the VM is given
        expected = (
            ("127.0.0.1:9092", "SASL_PLAINTEXT")
            if nodes == 1
            else ("10.0.0.1:9095,10.0.0.2:9095,10.0.0.3:9095", "SASL_SSL")
        )
        assert (settings.bootstrap_servers, settings.security_protocol) == expected
    # The whole environment the worker's flows get is a valid configuration: Kafka as above,
    # and Snowflake as a service user per runtime role, each from its own block.
    for name, value in flows.items():
        monkeypatch.setenv(name, value)
    logins = load_settings().warehouse.service_logins()
    assert {purpose: runtime.login.connector_block for purpose, runtime in logins.items()} == {
        "load": "stockpipe-snowflake-loader",
        "transform": "stockpipe-snowflake-transformer",
        "read": "stockpipe-snowflake-reader",
    }


def test_without_client_cidrs_the_external_listener_binds_loopback_only() -> None:
    """No firewall rule lets Kafka's clients in (gce_vm_kafka_client_cidrs is empty by
    default), and the listener does not wait on every interface for one to appear."""
    assert group_vars(1, "gce_vm_kafka_client_cidrs") == {"gce_vm_kafka_client_cidrs": []}
    rendered = group_vars(1, "kafka_external_listen_address")
    assert rendered == {"kafka_external_listen_address": "127.0.0.1"}
