"""provision.yml / teardown.yml against a local fake of the Compute Engine and IAM REST APIs.

The stockpipe.gcp modules run unchanged; only their endpoints point at the fake (the
GCP_COMPUTE_ENDPOINT / GCP_IAM_ENDPOINT overrides a user could set for a private endpoint).
Credentials are a real service-account key file made for the test, so the client signs real
tokens; the fake refuses requests without one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.ansible.fake_gce import FakeGCE, serve
from tests.ansible.playbook import run_playbook

PROJECT = "stockpipe-test-123"


@pytest.fixture
def gce(tmp_path: Path) -> Iterator[tuple[FakeGCE, list[str], dict[str, str]]]:
    fake, server = serve()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    credentials = tmp_path / "sa.json"
    credentials.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": f"deployer@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{fake.url}/token",
            }
        )
    )
    ssh_key = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    (tmp_path / "id_ed25519.pub").write_text(ssh_key + " admin@laptop\n")
    extra = {
        "gce_vm_project": PROJECT,
        "gce_vm_region": "us-east1",
        "gce_vm_admin_cidrs": ["198.51.100.0/24"],
        "gce_vm_kafka_client_cidrs": ["192.0.2.10/32", "192.0.2.64/26"],
        "gce_vm_ssh_public_key_file": str(tmp_path / "id_ed25519.pub"),
        "gce_vm_inventory_file": str(tmp_path / "gcp.yml"),
        "gce_vm_known_hosts_file": str(tmp_path / "known_hosts"),
        # The fake publishes host keys from its third read on: look again at once.
        "gce_vm_host_key_delay_seconds": 0,
    }
    env = {
        "GCP_SERVICE_ACCOUNT_FILE": str(credentials),
        "GCP_COMPUTE_ENDPOINT": fake.url,
        "GCP_IAM_ENDPOINT": fake.url,
    }
    yield fake, ["-e", json.dumps(extra)], env
    server.shutdown()


def test_one_vm_from_provision_through_a_changed_firewall_list_to_teardown(gce, tmp_path):
    """The life of one VM, as a user lives it (each step on what the last one left, as
    Molecule's create / idempotence / destroy sequence): provision creates what the
    variables say; a second run creates nothing; a changed firewall list is brought in line;
    teardown refuses without confirmation, then deletes everything; a second teardown does
    nothing."""
    fake, args, env = gce

    first = run_playbook("provision.yml", *args, env=env)
    assert first.returncode == 0, first.failures() or first.output[-3000:]
    # account, network, subnetwork, address, 2 firewall rules, VM, known_hosts, inventory
    assert first.changed() == 9

    posts = {r.path: r.body for r in fake.writes() if r.method == "POST"}
    vm = posts[f"/compute/v1/projects/{PROJECT}/zones/us-east1-b/instances"]
    assert vm["machineType"] == "zones/us-east1-b/machineTypes/e2-micro"
    boot = vm["disks"][0]
    assert boot["boot"] and boot["autoDelete"]
    assert (
        boot["initializeParams"]["sourceImage"]
        == "projects/debian-cloud/global/images/family/debian-13"
    )
    assert boot["initializeParams"]["diskType"] == "zones/us-east1-b/diskTypes/pd-standard"
    assert vm["tags"]["items"] == ["stockpipe"]
    assert vm["serviceAccounts"] == [{"email": f"stockpipe-vm@{PROJECT}.iam.gserviceaccount.com"}]
    address = posts[f"/compute/v1/projects/{PROJECT}/regions/us-east1/addresses"]
    assert address["networkTier"] == "STANDARD"
    reserved_ip = fake.resources["addresses"][("us-east1", "stockpipe-ip")]["address"]
    assert vm["networkInterfaces"][0]["accessConfigs"][0]["natIP"] == reserved_ip
    metadata = {item["key"]: item["value"] for item in vm["metadata"]["items"]}
    assert metadata["ssh-keys"].startswith("stockpipe-admin:ssh-ed25519 ")
    # Only that key opens the VM (project-wide keys are refused), and it publishes its host
    # keys, which provision pinned: SSH checks them on the first connection.
    assert metadata["block-project-ssh-keys"] == "TRUE"
    assert metadata["enable-guest-attributes"] == "TRUE"
    assert metadata["enable-oslogin"] == "FALSE"
    pinned = [
        line for line in (tmp_path / "known_hosts").read_text().splitlines() if line[:1] != "#"
    ]
    assert pinned == [
        f"{reserved_ip} {kind} {key}" for kind, key in sorted(fake.host_keys("stockpipe").items())
    ]
    assert fake.guest_attribute_reads["stockpipe"] >= 3  # provision waited for them

    # The VM is in a network of its own (custom mode, one subnetwork), not the project's
    # default network with its pre-made rules.
    network = fake.resources["networks"]["stockpipe"]
    assert network["autoCreateSubnetworks"] is False
    subnet = fake.resources["subnetworks"][("us-east1", "stockpipe-us-east1")]
    assert subnet["ipCidrRange"] == "10.20.0.0/24"
    interface = fake.resources["instances"][("us-east1-b", "stockpipe")]["networkInterfaces"][0]
    assert interface["network"] == "global/networks/stockpipe"
    assert interface["subnetwork"] == subnet["selfLink"]
    assert ip_address(interface["networkIP"]) in ip_network("10.20.0.0/24")
    # What reaches the VM, read from every rule of its network as the API would apply them:
    # SSH from the admin CIDRs and Kafka's SASL_SSL listener from its clients, nothing else.
    assert reachable(fake, "stockpipe", ["stockpipe"]) == {
        ("tcp", "22", "198.51.100.0/24"),
        ("tcp", "9094", "192.0.2.10/32"),
        ("tcp", "9094", "192.0.2.64/26"),
    }

    rules = fake.made()["firewalls"]
    assert rules["stockpipe-allow-ssh"]["sourceRanges"] == ["198.51.100.0/24"]
    assert rules["stockpipe-allow-ssh"]["allowed"] == [{"IPProtocol": "tcp", "ports": ["22"]}]
    assert rules["stockpipe-allow-kafka"]["sourceRanges"] == ["192.0.2.10/32", "192.0.2.64/26"]
    assert rules["stockpipe-allow-kafka"]["allowed"] == [{"IPProtocol": "tcp", "ports": ["9094"]}]
    assert all(rule["targetTags"] == ["stockpipe"] for rule in rules.values())
    assert set(rules) == {"stockpipe-allow-ssh", "stockpipe-allow-kafka"}  # nothing else open
    api_calls = [r for r in fake.requests if r.path != "/token"]
    assert all(r.authorization.startswith("Bearer ") for r in api_calls)
    assert set(fake.token_subjects) == {f"deployer@{PROJECT}.iam.gserviceaccount.com"}

    inventory = (tmp_path / "gcp.yml").read_text()
    assert f"ansible_host: {reserved_ip}" in inventory
    known_hosts = tmp_path / "known_hosts"
    assert f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes" in inventory

    writes_before = len(fake.writes())
    second = run_playbook("provision.yml", *args, env=env)
    assert second.returncode == 0, second.failures()
    assert second.changed() == 0, second.changed_tasks()
    assert len(fake.writes()) == writes_before

    # The firewall lists change: Kafka's clients go away, one more admin address.
    narrowed = json.loads(args[1]) | {"gce_vm_kafka_client_cidrs": []}
    widened_ssh = narrowed | {"gce_vm_admin_cidrs": ["198.51.100.0/24", "203.0.113.5/32"]}
    changed = run_playbook("provision.yml", "-e", json.dumps(widened_ssh), env=env)
    assert changed.returncode == 0, changed.failures()
    rules = fake.made()["firewalls"]
    assert "stockpipe-allow-kafka" not in rules  # no client CIDRs, no Kafka rule at all
    assert rules["stockpipe-allow-ssh"]["sourceRanges"] == ["198.51.100.0/24", "203.0.113.5/32"]
    assert [r.method for r in fake.writes()][-2:] == ["PATCH", "DELETE"]
    deleted_before = len([r for r in fake.writes() if r.method == "DELETE"])

    unconfirmed = run_playbook("teardown.yml", *args, env=env)
    assert unconfirmed.returncode != 0
    assert "Not confirmed; nothing was deleted" in unconfirmed.output
    assert len([r for r in fake.writes() if r.method == "DELETE"]) == deleted_before

    first = run_playbook("teardown.yml", *args, "-e", "confirm=yes", env=env)
    assert first.returncode == 0, first.failures() or first.output[-3000:]
    deleted = [r.path.rsplit("/", 1)[-1] for r in fake.writes() if r.method == "DELETE"]
    # The VM goes first: the real API refuses to release an address still in use.
    assert deleted[deleted_before:] == [
        "stockpipe",
        "stockpipe-allow-ssh",
        "stockpipe-ip",
        "stockpipe-us-east1",
        "stockpipe",  # the network, once nothing uses it
        f"stockpipe-vm@{PROJECT}.iam.gserviceaccount.com",
    ]
    assert all(not store for store in fake.made().values())
    assert not (tmp_path / "gcp.yml").exists() and not known_hosts.exists()

    again = run_playbook("teardown.yml", *args, "-e", "confirm=yes", env=env)
    assert again.returncode == 0, again.failures()
    assert again.changed() == 0, again.changed_tasks()


def reachable(fake: FakeGCE, network: str, tags: list[str]) -> set[tuple[str, str, str]]:
    """(protocol, ports, source range) of every ingress rule of ``network`` that applies to
    a VM with ``tags`` (a rule without target tags applies to every VM of its network)."""
    return {
        (allowed["IPProtocol"], ",".join(allowed.get("ports", ["all"])), source)
        for rule in fake.resources["firewalls"].values()
        if rule["network"].rsplit("/", 1)[-1] == network
        and rule.get("direction", "INGRESS") == "INGRESS"
        and (not rule["targetTags"] or set(rule["targetTags"]) & set(tags))
        for allowed in rule["allowed"]
        for source in rule["sourceRanges"]
    }


def test_provision_refuses_the_projects_default_network_before_calling_any_api(gce):
    """In "default" the pre-made rules would open SSH and RDP to the world and every port to
    the project's other VMs, whatever the playbook's own rules say."""
    fake, args, env = gce
    assert ("tcp", "22", "0.0.0.0/0") in reachable(fake, "default", ["stockpipe"])
    in_default = json.loads(args[1]) | {"gce_vm_network": "default"}

    run = run_playbook("provision.yml", "-e", json.dumps(in_default), env=env)

    assert run.returncode != 0
    assert 'not be the project\'s "default" network' in " ".join(run.failures())
    assert fake.requests == []


def test_provision_refuses_ssh_open_to_the_world_before_calling_any_api(gce):
    fake, args, env = gce
    open_ssh = json.loads(args[1]) | {"gce_vm_admin_cidrs": ["0.0.0.0/0"]}

    run = run_playbook("provision.yml", "-e", json.dumps(open_ssh), env=env)

    assert run.returncode != 0
    assert "not 0.0.0.0/0" in " ".join(run.failures())
    assert fake.requests == []


@pytest.mark.parametrize("variable", ["GCP_IAM_ENDPOINT", "GCP_COMPUTE_ENDPOINT"])
def test_an_endpoint_that_would_carry_the_token_in_clear_text_is_refused(gce, variable):
    """Plain http is for a stand-in on loopback (as here): elsewhere the operator's token
    would cross the network readable. Refused before any request, the token's included."""
    fake, args, env = gce
    run = run_playbook("provision.yml", *args, env=env | {variable: "http://gce.example.test:8080"})
    assert run.returncode != 0
    assert "refusing API endpoint http://gce.example.test:8080" in run.output  # a loop's item
    if variable == "GCP_IAM_ENDPOINT":  # the first task's API: nothing was asked of any
        assert fake.requests == []
    else:  # the service account exists (IAM); no Compute request, and no token sent to it
        assert not [r for r in fake.requests if r.path.startswith("/compute/")]


def test_three_nodes_make_a_cluster_open_only_to_each_other(gce, tmp_path):
    fake, args, env = gce
    three = ["-e", json.dumps(json.loads(args[1]) | {"gce_vm_nodes": 3})]

    first = run_playbook("provision.yml", *three, env=env)

    assert first.returncode == 0, first.failures() or first.output[-3000:]
    vms = fake.resources["instances"]
    assert sorted(name for _, name in vms) == ["stockpipe", "stockpipe-2", "stockpipe-3"]
    internal = {name: vm["networkInterfaces"][0]["networkIP"] for (_, name), vm in vms.items()}
    rule = fake.resources["firewalls"]["stockpipe-allow-cluster"]
    assert sorted(rule["sourceRanges"]) == sorted(f"{ip}/32" for ip in internal.values())
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["9093", "9095", "7071"]}]
    assert rule["targetTags"] == ["stockpipe"]

    inventory = yaml.safe_load((tmp_path / "gcp.yml").read_text())
    nodes = inventory["kafka"]["hosts"]
    assert list(nodes) == ["stockpipe", "stockpipe-2", "stockpipe-3"]  # node ids 1, 2, 3
    assert {n: v["kafka_internal_address"] for n, v in nodes.items()} == internal
    assert list(inventory["stockpipe_vm"]["hosts"]) == ["stockpipe"]

    again = run_playbook("provision.yml", *three, env=env)
    assert again.returncode == 0 and again.changed() == 0, again.changed_tasks()

    # Every node and address carries the deployment's label, which teardown selects by.
    assert {vm["labels"]["stockpipe_deployment"] for vm in vms.values()} == {"stockpipe"}
    addresses = fake.resources["addresses"].values()
    assert {a["labels"]["stockpipe_deployment"] for a in addresses} == {"stockpipe"}

    writes_before = len(fake.writes())
    # Torn down with the default variables (gce_vm_nodes: 1), as an operator who forgot the
    # -e they provisioned with would: the label finds all three nodes anyway.
    gone = run_playbook("teardown.yml", *args, "-e", "confirm=yes", env=env)
    assert gone.returncode == 0, gone.failures()
    # Every node, address and rule of the cluster is gone, and its inventory; the VMs go
    # before the addresses they hold (the real API refuses to release one in use).
    assert all(not store for store in fake.made().values())
    assert not (tmp_path / "gcp.yml").exists()
    deleted = [
        (r.path.split("/")[-2], r.path.rsplit("/", 1)[-1])
        for r in fake.writes()[writes_before:]
        if r.method == "DELETE"
    ]
    kinds = [kind for kind, _ in deleted]
    assert sorted(name for kind, name in deleted if kind == "instances") == sorted(internal)
    assert max(i for i, k in enumerate(kinds) if k == "instances") < min(
        i for i, k in enumerate(kinds) if k == "addresses"
    )
    assert "stockpipe-allow-cluster" in {name for kind, name in deleted if kind == "firewalls"}


def test_a_two_node_cluster_is_refused_before_calling_any_api(gce):
    fake, args, env = gce
    two = json.loads(args[1]) | {"gce_vm_nodes": 2}

    run = run_playbook("provision.yml", "-e", json.dumps(two), env=env)

    assert run.returncode != 0
    assert "gce_vm_nodes must be 1, 3 or 5" in " ".join(run.failures())
    assert fake.requests == []
