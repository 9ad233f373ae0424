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

from stockpipe.processes import running_pid, start_background, stop_background
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
            ),
            Component(
                "node-exporter",
                ("prometheus-node-exporter", "node_exporter"),
                m.node_exporter_port,
                "/metrics",
            ),
            Component("prometheus", ("prometheus",), m.prometheus_port, "/-/ready"),
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
            return [binary, f"--web.listen-address={address}"]
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
        config.write_text(
            render_prometheus_config(
                rules_dir=rules,
                prometheus_target=f"127.0.0.1:{m.prometheus_port}",
                node_exporter_target=f"127.0.0.1:{m.node_exporter_port}",
                pushgateway_target=f"127.0.0.1:{m.pushgateway_port}",
                kafka_jmx_targets=[f"127.0.0.1:{self.settings.local_kafka.jmx_exporter_port}"],
                scrape_interval=m.scrape_interval,
            )
        )
        return config

    def _pid_file(self, component: Component) -> Path:
        return self.home / f"{component.name}.pid"

    def up(self, timeout: float = 30.0) -> dict[str, str]:
        """Start whatever is not running; wait until each answers. Returns name -> URL."""
        self.home.mkdir(parents=True, exist_ok=True)
        urls = {}
        for component in self.components:
            url = f"http://127.0.0.1:{component.port}"
            if running_pid(self._pid_file(component)) is None:
                process = start_background(
                    self._command(component),
                    self.home / f"{component.name}.log",
                    self._pid_file(component),
                    self.home,
                )
                deadline = time.monotonic() + timeout
                while not _answers(url + component.ready_path):
                    if process.poll() is not None or time.monotonic() > deadline:
                        log = (self.home / f"{component.name}.log").read_text()[-2000:]
                        raise MonitoringError(f"{component.name} did not start:\n{log}")
                    time.sleep(0.2)
            urls[component.name] = url
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
