"""Fixtures shared by the tests that run the kafka role on this machine."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import tempfile
import threading
from functools import cache, partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from stockpipe.local_stack.broker import LocalBroker
from tests.ansible.playbook import ANSIBLE_DIR, BIN

KAFKA_VERSION = "4.1.2"


@cache
def group_vars(nodes: int, *names: str) -> dict:
    """The variables ``names`` as the playbook's group_vars give the first node (a Kafka node
    and the VM of the services) when the inventory's kafka group has ``nodes`` hosts:
    Ansible's own templating of the package's topology (stockpipe/streaming/kafka/
    topology.yml) and of vault.example.yml's secrets, as site.yml sees them."""
    hosts = {
        f"node{i}": {"ansible_connection": "local", "kafka_internal_address": f"10.0.0.{i}"}
        for i in range(1, nodes + 1)
    }
    inventory = {"kafka": {"hosts": hosts}, "stockpipe_vm": {"hosts": {"node1": {}}}}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "inventory.yml"
        path.write_text(yaml.safe_dump(inventory))
        expression = "{{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} | to_json }}"
        command = [str(BIN / "ansible"), "node1", "-i", str(path), "-m", "ansible.builtin.debug"]
        # The Vault's secrets as the example gives them (a real run has the user's Vault).
        command += ["-e", f"@{ANSIBLE_DIR / 'vault.example.yml'}"]
        result = subprocess.run(
            [*command, "--playbook-dir", str(ANSIBLE_DIR), "-a", f"msg={expression}"],
            cwd=ANSIBLE_DIR,
            env={**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
            | {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    message = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["node1"]["msg"]
    return json.loads(message) if isinstance(message, str) else message


def kafka_pipeline_vars() -> dict:
    """The pipeline's topics and ACLs as group_vars/kafka gives a single-node VM."""
    return group_vars(1, "kafka_topics", "kafka_acls")


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory):
    """An HTTP mirror serving kafka_2.13-<version>.tgz in Apache's layout; yields (url, sha512)."""
    libs = LocalBroker(home=tmp_path_factory.mktemp("unused")).libs_dir()
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        LocalBroker(home=tmp_path_factory.mktemp("unused")).install(progress=False)
    root = tmp_path_factory.mktemp("mirror")
    (root / KAFKA_VERSION).mkdir()
    tarball = root / KAFKA_VERSION / f"kafka_2.13-{KAFKA_VERSION}.tgz"
    with tarfile.open(tarball, "w:gz", compresslevel=1) as tar:
        for jar in sorted(libs.glob("*.jar")):
            if not jar.name.startswith("jmx_prometheus"):
                tar.add(jar, arcname=f"kafka_2.13-{KAFKA_VERSION}/libs/{jar.name}")
    sha512 = hashlib.sha512(tarball.read_bytes()).hexdigest()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root))
    )
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sha512, libs
    server.shutdown()


@pytest.fixture(scope="session")
def kafka_downloads(mirror) -> dict:
    """The kafka role's download variables, pointed at the local mirror and jars."""
    url, sha512, libs = mirror
    return {
        "kafka_mirror": url,
        "kafka_checksum": f"sha512:{sha512}",
        "kafka_jmx_exporter_url": f"file://{libs}/jmx_prometheus_javaagent-1.0.1.jar",
        "kafka_packages": [],
    }
