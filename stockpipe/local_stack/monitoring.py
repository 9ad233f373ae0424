"""The local monitoring stack: Prometheus, its Pushgateway and the node exporter (Debian
packages), run beside the local broker with the project's configuration.

The Prometheus configuration is rendered from ``deployments/monitoring/prometheus.yml.j2``,
the template the Ansible role uses on the VM, with this machine's ports.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
import jinja2

from stockpipe.local_stack.processes import (
    port_in_use,
    running_pid,
    start_background,
    stop_background,
)
from stockpipe.settings import Settings

# Package data of deployments/ (Prometheus template, rules, dashboards).
MONITORING_DIR = Path(str(resources.files("deployments") / "monitoring"))


class MonitoringError(RuntimeError):
    """A monitoring component is missing or did not start."""


@dataclass(frozen=True)
class Component:
    name: str
    binaries: tuple[str, ...]
    port: int
    ready_path: str
    port_setting: str  # the environment variable that sets ``port``


def render_prometheus_config(
    rules_dir: Path,
    prometheus_target: str,
    node_exporter_target: str,
    pushgateway_target: str,
    kafka_jmx_targets: list[str],
    scrape_interval: str = "15s",
) -> str:
    """The project's prometheus.yml for these targets."""
    template = jinja2.Template(
        (MONITORING_DIR / "prometheus.yml.j2").read_text(), undefined=jinja2.StrictUndefined
    )
    return template.render(
        rules_dir=str(rules_dir),
        prometheus_target=prometheus_target,
        node_exporter_target=node_exporter_target,
        pushgateway_target=pushgateway_target,
        kafka_jmx_targets=kafka_jmx_targets,
        scrape_interval=scrape_interval,
    )


class LocalMonitoring:
    """Start, stop and report the local Prometheus, Pushgateway and node exporter."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.home_dir / "monitoring"
        m = settings.metrics
        self.components = [
            Component(
                "pushgateway",
                ("prometheus-pushgateway", "pushgateway"),
                m.pushgateway_port,
                "/-/ready",
                "STOCKPIPE_METRICS__PUSHGATEWAY_PORT",
            ),
            Component(
                "node-exporter",
                ("prometheus-node-exporter", "node_exporter"),
                m.node_exporter_port,
                "/metrics",
                "STOCKPIPE_METRICS__NODE_EXPORTER_PORT",
            ),
            Component(
                "prometheus",
                ("prometheus",),
                m.prometheus_port,
                "/-/ready",
                "STOCKPIPE_METRICS__PROMETHEUS_PORT",
            ),
        ]

    def _binary(self, component: Component) -> str:
        for name in component.binaries:
            if found := shutil.which(name):
                return found
        raise MonitoringError(
            f"{component.binaries[0]} is not installed (apt-get install {component.binaries[0]}"
            " - deployments/local/setup.sh does it)"
        )

    def _command(self, component: Component) -> list[str]:
        binary = self._binary(component)
        address = f"127.0.0.1:{component.port}"
        if component.name == "pushgateway":
            # A state file of this home's own: without one, Debian's build reads and writes
            # the machine-wide /var/lib/prometheus/pushgateway.data, and every installation
            # on the machine would see (and alert on) the others' pushed series.
            return [
                binary,
                f"--web.listen-address={address}",
                f"--persistence.file={self.home / 'pushgateway.data'}",
            ]
        if component.name == "node-exporter":
            return [binary, f"--web.listen-address={address}"]
        return [
            binary,
            f"--config.file={self.write_config()}",
            f"--storage.tsdb.path={self.home / 'prometheus-data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={address}",
            "--web.enable-lifecycle",
        ]

    def write_config(self) -> Path:
        m = self.settings.metrics
        rules = self.home / "rules"
        rules.mkdir(parents=True, exist_ok=True)
        for rule_file in (MONITORING_DIR / "rules").glob("*.rules.yml"):
            shutil.copyfile(rule_file, rules / rule_file.name)
        config = self.home / "prometheus.yml"
        jmx_port = self.settings.local_kafka.jmx_exporter_port
        config.write_text(
            render_prometheus_config(
                rules_dir=rules,
                prometheus_target=f"127.0.0.1:{m.prometheus_port}",
                node_exporter_target=f"127.0.0.1:{m.node_exporter_port}",
                pushgateway_target=f"127.0.0.1:{m.pushgateway_port}",
                # No exporter (port 0): nothing to scrape, rather than a target that is
                # always down and a KafkaDown alert while the broker runs.
                kafka_jmx_targets=[f"127.0.0.1:{jmx_port}"] if jmx_port else [],
                scrape_interval=m.scrape_interval,
            )
        )
        return config

    def _pid_file(self, component: Component) -> Path:
        return self.home / f"{component.name}.pid"

    def up(self, timeout: float = 30.0) -> dict[str, str]:
        """Start whatever is not running; wait until each answers. Returns name -> URL.

        Raises:
            MonitoringError: a port is taken by another program (naming its setting) or a
                component did not start (the last lines of its log); what this call
                started is stopped again.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        urls, started = {}, []
        try:
            for component in self.components:
                url = f"http://127.0.0.1:{component.port}"
                if running_pid(self._pid_file(component)) is None:
                    if port_in_use(component.port):
                        raise MonitoringError(
                            f"{component.name}: port {component.port} is in use by another "
                            f"program; stop it or set {component.port_setting}"
                        )
                    process = start_background(
                        self._command(component),
                        self.home / f"{component.name}.log",
                        self._pid_file(component),
                        self.home,
                    )
                    started.append(component)
                    deadline = time.monotonic() + timeout
                    while not _answers(url + component.ready_path):
                        if process.poll() is not None or time.monotonic() > deadline:
                            log = (self.home / f"{component.name}.log").read_text()
                            last = "\n".join(log.strip().splitlines()[-5:])
                            raise MonitoringError(
                                f"{component.name} did not start (log: "
                                f"{self.home / (component.name + '.log')}):\n{last}"
                            )
                        time.sleep(0.2)
                urls[component.name] = url
        except BaseException:
            for component in reversed(started):
                stop_background(self._pid_file(component))
            raise
        return urls

    def down(self) -> list[str]:
        return [c.name for c in reversed(self.components) if stop_background(self._pid_file(c))]

    def status(self) -> dict[str, bool]:
        return {
            c.name: running_pid(self._pid_file(c)) is not None
            and _answers(f"http://127.0.0.1:{c.port}{c.ready_path}")
            for c in self.components
        }


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
