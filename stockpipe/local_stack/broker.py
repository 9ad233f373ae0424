"""Real Apache Kafka 4.x brokers in KRaft combined mode, on this machine.

``stockpipe kafka up`` and the test fixtures both use :class:`LocalBroker` (one node); the
tests' ``LocalCluster`` (tests/local_cluster.py) runs several of them on loopback as one
cluster (one controller quorum over all nodes), the shape the VMs take with
``gce_vm_nodes: 3``. Each node:

1. install: the broker's jars from Maven Central through the pom shipped in this package
   (Java 17 and Maven are all it needs), or an unpacked Apache tarball (``kafka_home``);
2. format the storage once with a new cluster id (kept in ``meta.properties``);
3. start ``kafka.Kafka`` in the background, log to ``<home>/kafka/logs``, wait until it
   answers a metadata request;
4. stop with SIGTERM (a clean controlled shutdown), SIGKILL only after a timeout.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
from confluent_kafka.admin import AdminClient
from rich.console import Console

from stockpipe.local_stack.processes import (
    kill_background,
    port_in_use,
    running_pid,
    start_background,
    stop_background,
)
from stockpipe.streaming.clients import quiet

DEFAULT_DIST_DIR = Path("~/.cache/stockpipe/kafka").expanduser()
# The JIT and collector the VM's broker runs with (the kafka role's kafka_jvm_options): a
# single broker on a workstation serves one pipeline, and C2 and G1's threads cost it CPU
# at start and while idle (README, "Why the tuned settings are what they are").
LOCAL_JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
# A broker serving as fast as it can (the throughput benchmarks' ceiling).
THROUGHPUT_JVM_OPTIONS = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")


class BrokerError(RuntimeError):
    """The local broker could not be installed, formatted or started. Says why."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap_servers: str
    cluster_id: str | None
    log_file: Path


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, base64url without padding (22 characters).

    Never starting with '-', which the storage tool would take for an option.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class LocalBroker:
    """One KRaft broker+controller with its state under ``home``.

    Alone (``voters`` empty) it is its own quorum; in the tests' ``LocalCluster`` every node
    gets the same ``voters`` and ``cluster_id``.

    Args:
        home: directory for config, data and logs of this broker.
        port: the PLAINTEXT client listener on localhost.
        controller_port: the KRaft controller listener on localhost.
        version: Apache Kafka version (4.x) to install from Maven Central.
        kafka_home: an unpacked Apache Kafka tarball to use instead of Maven Central.
        dist_dir: where installed jars are cached, shared by every broker of this user.
        heap: JVM heap (-Xms/-Xmx).
        jvm_options: the JVM's options (default :data:`LOCAL_JVM_OPTIONS`).
        jmx_exporter_port: serve the Prometheus JMX exporter's /metrics on this port.
        node_id: this node's id in the cluster.
        voters: (node id, controller port) of every controller of the cluster's quorum.
        cluster_id: the cluster's id when formatting (a new one when None).
    """

    def __init__(
        self,
        home: Path,
        port: int = 9092,
        controller_port: int = 9093,
        version: str = "4.1.2",
        kafka_home: Path | None = None,
        dist_dir: Path = DEFAULT_DIST_DIR,
        heap: str = "512m",
        start_timeout_seconds: float = 60.0,
        jmx_exporter_port: int | None = None,
        jvm_options: Sequence[str] = LOCAL_JVM_OPTIONS,
        node_id: int = 1,
        voters: Sequence[tuple[int, int]] = (),
        cluster_id: str | None = None,
    ):
        """``jvm_options`` follow -Xms/-Xmx (so an -Xms among them wins)."""
        self.home = Path(home).resolve()
        self.port = port
        self.controller_port = controller_port
        self.version = version
        self.kafka_home = kafka_home
        self.dist_dir = Path(dist_dir).expanduser()
        self.heap = heap
        self.start_timeout_seconds = start_timeout_seconds
        self.jmx_exporter_port = jmx_exporter_port
        self.jvm_options = tuple(jvm_options)
        self.node_id = node_id
        self.voters = tuple(voters)
        self.new_cluster_id = cluster_id
        self._process: subprocess.Popen | None = None

    # -- paths ------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return f"localhost:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.home / "config" / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    # -- install ----------------------------------------------------------------------
    def libs_dir(self) -> Path:
        if self.kafka_home:
            return Path(self.kafka_home) / "libs"
        return self.dist_dir / self.version / "libs"

    def install(self, progress: bool = True) -> Path:
        """Make sure the broker's jars are present; return the directory holding them."""
        libs = self.libs_dir()
        if self.kafka_home:
            if not any(libs.glob("kafka_2.13-*.jar")):
                raise BrokerError(f"{self.kafka_home} is not an unpacked Apache Kafka tarball")
            return libs
        marker = libs.parent / ".installed"
        if marker.exists() and marker.read_text().strip() == self._install_id():
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise BrokerError(
                "Maven (mvn) is not installed: install it (apt-get install maven) or point "
                "STOCKPIPE_LOCAL_KAFKA__KAFKA_HOME at an unpacked Apache Kafka 4.x tarball"
            )
        self._require_java()
        if progress:
            print(f"installing Apache Kafka {self.version} from Maven Central into {libs} ...")
        pom = resources.files("stockpipe.local_stack") / "pom.xml"
        staging = libs.parent / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with resources.as_file(pom) as pom_path:
            result = subprocess.run(
                [
                    mvn,
                    "-B",
                    "-q",
                    "-f",
                    str(pom_path),
                    f"-Dkafka.version={self.version}",
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={staging}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            raise BrokerError(
                f"mvn could not fetch Kafka {self.version}:\n{result.stdout[-2000:]}"
                f"{result.stderr[-2000:]}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        marker.write_text(self._install_id() + "\n")
        return libs

    def _install_id(self) -> str:
        # Changes when the pom's contents change, so an older install is refreshed.
        pom = resources.files("stockpipe.local_stack") / "pom.xml"
        digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
        return f"{self.version}+{digest}"

    def jmx_agent_option(self) -> list[str]:
        """The -javaagent option of the JMX exporter, or nothing when it is off."""
        if not self.jmx_exporter_port:
            return []
        agents = sorted(self.libs_dir().glob("jmx_prometheus_javaagent-*.jar"))
        if not agents:
            raise BrokerError(f"no JMX exporter agent in {self.libs_dir()} (reinstall)")
        config = resources.files("stockpipe.local_stack") / "jmx_exporter.yml"
        copy = self.home / "config" / "jmx_exporter.yml"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(config.read_bytes())
        return [f"-javaagent:{agents[-1]}=127.0.0.1:{self.jmx_exporter_port}:{copy}"]

    @staticmethod
    def _require_java() -> str:
        java = shutil.which("java")
        if not java:
            raise BrokerError("Java 17+ is not installed (apt-get install openjdk-17-jre-headless)")
        return java

    def _classpath(self) -> str:
        return str(self.libs_dir() / "*")

    # -- configure and format ------------------------------------------------------------
    def render_config(self) -> str:
        """server.properties: PLAINTEXT listeners on loopback, then the kafka role's storage,
        topic defaults and tuning (its broker.properties.j2), so the local broker and the
        VM's cannot drift apart."""
        # Internal topics are replicated like the pipeline's (three copies on three nodes, a
        # write acknowledged by two); one node keeps one copy of everything.
        replicas = min(3, max(1, len(self.voters)))
        return _render(
            "server.properties.j2",
            kafka_port=self.port,
            kafka_controller_port=self.controller_port,
            kafka_voters=self.voters,
            kafka_node_id=self.node_id,
            kafka_data_dir=self.data_dir,
            kafka_num_partitions=1,
            kafka_log_retention_hours=168,
            kafka_replication_factor=replicas,
            kafka_min_insync_replicas=2 if replicas >= 3 else 1,
            kafka_offsets_topic_partitions=1,
        )

    def cluster_id(self) -> str | None:
        return formatted_cluster_id(self.data_dir / "meta.properties")

    def format_storage(self) -> str:
        """Format the storage once; return the cluster id (the existing one if formatted)."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.render_config())
        existing = self.cluster_id()
        if existing:
            return existing
        cluster_id = self.new_cluster_id or new_cluster_id()
        # A static quorum (controller.quorum.voters) is formatted as it is; a lone node
        # bootstraps a dynamic quorum of itself.
        quorum = [] if self.voters else ["--standalone"]
        result = subprocess.run(
            [
                self._require_java(),
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                *quorum,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting {self.data_dir} failed:\n{result.stdout}{result.stderr}")
        return cluster_id

    # -- run ----------------------------------------------------------------------------
    def pid(self) -> int | None:
        return running_pid(self.pid_file)

    def is_ready(self, timeout: float = 2.0) -> bool:
        try:
            AdminClient(quiet({"bootstrap.servers": self.bootstrap_servers})).list_topics(
                timeout=timeout
            )
        except Exception:
            return False
        return True

    def start(self, progress: bool = True, wait: bool = True) -> BrokerStatus:
        """Install if needed, format once, start, and (``wait``) wait until it answers.

        A node of a cluster answers only once a majority of the quorum runs: the cluster
        starts every node with ``wait=False``, then waits for each (:meth:`wait_until_ready`).
        """
        if self.pid() is not None and self.is_ready():
            return self.status()
        self.install(progress=progress)
        cluster_id = self.format_storage()
        for port in (self.port, self.controller_port, self.jmx_exporter_port):
            if not port:
                continue
            if port_in_use(port):
                raise BrokerError(
                    f"port {port} is already in use by another program; choose free ports with "
                    "STOCKPIPE_LOCAL_KAFKA__PORT / __CONTROLLER_PORT / __JMX_EXPORTER_PORT"
                )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log4j = self.home / "config" / "log4j2.properties"
        log4j.write_text(
            _render(
                "log4j2.properties.j2",
                ansible_managed="Written by stockpipe from the kafka role's template.",
                kafka_log_dir=self.log_dir,
            )
        )
        command = [
            self._require_java(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            *self.jvm_options,
            "-Djava.awt.headless=true",
            *self.jmx_agent_option(),
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.config_file),
        ]
        if progress:
            print(
                f"starting Kafka {self.version} (KRaft, cluster {cluster_id}) on "
                f"{self.bootstrap_servers}; log {self.log_file}"
            )
        self._process = start_background(command, self.stdout_file, self.pid_file, self.home)
        if not wait:
            return self.status()
        return self.wait_until_ready(progress)

    def wait_until_ready(self, progress: bool = False) -> BrokerStatus:
        """Wait until the started broker answers a metadata request; fail with its log."""
        process = self._process
        deadline = time.monotonic() + self.start_timeout_seconds
        waiting = (
            Console(stderr=True).status(f"waiting for Kafka to answer on {self.bootstrap_servers}")
            if progress
            else contextlib.nullcontext()
        )
        with waiting:
            while time.monotonic() < deadline:
                if process is not None and process.poll() is not None:
                    raise BrokerError(
                        f"Kafka exited with code {process.returncode} while starting:\n"
                        + self._log_tail()
                    )
                if self.is_ready(timeout=1.0):
                    return self.status()
                time.sleep(0.3)
        self.stop()
        raise BrokerError(
            f"Kafka did not answer on {self.bootstrap_servers} within "
            f"{self.start_timeout_seconds:.0f}s:\n{self._log_tail()}"
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker cleanly; return False when it was not running."""
        return stop_background(self.pid_file, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crashed machine: no controlled shutdown, no flushed checkpoints."""
        kill_background(self.pid_file)

    def status(self) -> BrokerStatus:
        pid = self.pid()
        return BrokerStatus(
            running=pid is not None and self.is_ready(timeout=2.0),
            pid=pid,
            bootstrap_servers=self.bootstrap_servers,
            cluster_id=self.cluster_id(),
            log_file=self.log_file,
        )

    def wipe(self) -> None:
        """Stop and delete all data (a rebuilt cluster gets a new cluster id)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _log_tail(self, lines: int = 30) -> str:
        chunks = []
        for path in (self.stdout_file, self.log_file):
            if path.exists():
                chunks += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(chunks[-lines:]) or "(no log output)"


def _render(template: str, **variables: object) -> str:
    """A template shipped in this package (some are links to the kafka role's), rendered as
    Ansible's template module renders it (trim_blocks), failing on an undefined variable."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - a Java properties file, not HTML
    )
    return environment.get_template(template).render(**variables)


def formatted_cluster_id(meta: Path) -> str | None:
    """The cluster id a formatted storage directory keeps in its meta.properties."""
    if not meta.exists():
        return None
    for line in meta.read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.split("=", 1)[1].strip()
    return None


def broker_from_settings(settings) -> LocalBroker:
    """The local broker the settings describe (``STOCKPIPE_LOCAL_KAFKA__*``)."""
    local = settings.local_kafka
    return LocalBroker(
        home=settings.kafka_dir,
        port=local.port,
        controller_port=local.controller_port,
        version=local.version,
        kafka_home=local.kafka_home,
        dist_dir=local.dist_dir,
        heap=local.heap,
        start_timeout_seconds=local.start_timeout_seconds,
        jmx_exporter_port=local.jmx_exporter_port,
    )
