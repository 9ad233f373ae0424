"""Fixtures shared by the tests that run the kafka role on this machine."""

from __future__ import annotations

import hashlib
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from stockpipe.streaming.broker import LocalBroker
from tests.ansible.playbook import ANSIBLE_DIR

KAFKA_VERSION = "4.1.2"


def pipeline_acls() -> list[dict]:
    """The pipeline users' least-privilege ACLs, as group_vars/kafka gives the VM (on the
    topics and group the tests use: the VM's own names)."""
    group_vars = yaml.safe_load((ANSIBLE_DIR / "group_vars/kafka/main.yml").read_text())
    return group_vars["_kafka_pipeline_acls"]


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
        "kafka_jmx_exporter_config_src": str(
            ANSIBLE_DIR.parent / "stockpipe/streaming/kafka/jmx_exporter.yml"
        ),
        "kafka_packages": [],
    }
