"""Monitoring against real components: the broker with the JMX exporter agent, Prometheus,
the Pushgateway and the node exporter (Debian packages), with the project's configuration.
Every dashboard panel's and every rule's expression runs through Prometheus' HTTP API, and
the key panels return data after a pipeline run."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from stockpipe import metrics
from stockpipe.drain import drain_prices
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.monitoring import (
    MONITORING_DIR,
    LocalMonitoring,
    render_prometheus_config,
)
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import load_settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.streaming.topics import ensure_topics
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import distinct_bar_messages

pytestmark = pytest.mark.integration
DASHBOARDS = sorted((MONITORING_DIR / "dashboards").glob("*.json"))
RULES = MONITORING_DIR / "rules" / "stockpipe.rules.yml"


def panel_expressions() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found.append((path.stem, panel["title"], target["expr"]))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r.get("alert") or r["record"], r["expr"]) for g in groups for r in g["rules"]]


def test_config_and_rules_pass_promtool(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        render_prometheus_config(
            rules_dir=RULES.parent,
            prometheus_target="localhost:9090",
            node_exporter_target="localhost:9100",
            pushgateway_target="localhost:9091",
            kafka_jmx_targets=["localhost:7071", "10.142.0.3:7071"],
        )
    )
    for command in (
        ["promtool", "check", "config", str(config)],
        ["promtool", "check", "rules", str(RULES)],
        ["promtool", "test", "rules", "stockpipe.rules.test.yml"],
    ):
        result = subprocess.run(command, cwd=RULES.parent, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_are_grafana_models_with_prometheus_panels() -> None:
    assert {p.stem for p in DASHBOARDS} == {"infrastructure-health", "pipeline"}
    for path in DASHBOARDS:
        model = json.loads(path.read_text())
        assert model["uid"] and model["title"] and model["schemaVersion"] >= 36
        assert [v["name"] for v in model["templating"]["list"]] == ["datasource"]
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids))
        for panel in model["panels"]:
            assert panel["type"] == "timeseries" and panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
            assert set(panel["gridPos"]) == {"h", "w", "x", "y"}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ports = {
        name: free_port()
        for name in ("kafka", "controller", "jmx", "prometheus", "pushgateway", "node")
    }
    env = {
        "STOCKPIPE_HOME": str(tmp_path / "home"),
        "STOCKPIPE_LOCAL_KAFKA__PORT": str(ports["kafka"]),
        "STOCKPIPE_LOCAL_KAFKA__CONTROLLER_PORT": str(ports["controller"]),
        "STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT": str(ports["jmx"]),
        "STOCKPIPE_METRICS__PROMETHEUS_PORT": str(ports["prometheus"]),
        "STOCKPIPE_METRICS__PUSHGATEWAY_PORT": str(ports["pushgateway"]),
        "STOCKPIPE_METRICS__NODE_EXPORTER_PORT": str(ports["node"]),
        "STOCKPIPE_METRICS__PUSHGATEWAY_URL": f"127.0.0.1:{ports['pushgateway']}",
        "STOCKPIPE_METRICS__SCRAPE_INTERVAL": "1s",
        "STOCKPIPE_KAFKA__PRICES_PARTITIONS": "3",
        "STOCKPIPE_DRAIN__MAX_WAIT_SECONDS": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    from stockpipe.local_stack.broker import broker_from_settings

    broker: LocalBroker = broker_from_settings(settings)
    broker.start(progress=False)
    monitoring = LocalMonitoring(settings)
    try:
        monitoring.up()
        yield settings, f"http://127.0.0.1:{ports['prometheus']}"
    finally:
        monitoring.down()
        broker.stop()


def query(prometheus: str, expr: str) -> dict:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]


def wait_for_sample(prometheus: str, expr: str, at_least: float) -> None:
    """Until Prometheus has scraped a value of ``expr`` of at least ``at_least`` (its scrape
    interval and a busy machine decide when; the bound is for a broken setup)."""
    wait_for_series(prometheus, expr, lambda value: value >= at_least, f"at least {at_least}")


def wait_for_series(
    prometheus: str, expr: str, accept=lambda value: True, wanted: str = "any value"
) -> None:
    """Until ``expr`` returns a series whose value ``accept`` takes. A scrape that failed on
    a busy machine marks the target's series stale until the next one, so a single look can
    find nothing where the next scrape finds it; the deadline is for a broken setup."""
    deadline = time.monotonic() + 180
    seen = None
    while time.monotonic() < deadline:
        result = query(prometheus, expr)["result"]
        seen = [float(r["value"][1]) for r in result]
        if any(accept(value) for value in seen):
            return
        time.sleep(0.5)
    pytest.fail(f"{expr} showed {seen or 'no data'}, not {wanted}, in Prometheus")


def test_every_panel_and_rule_evaluates_and_key_panels_show_data(stack) -> None:
    settings, prometheus = stack
    assert LocalMonitoring(settings).status() == {
        "pushgateway": True,
        "node-exporter": True,
        "prometheus": True,
    }
    ensure_topics(settings.kafka)
    messages_in = (
        "sum(kafka_server_brokertopicmetrics_messagesinpersec_total"
        f'{{topic="{settings.kafka.prices_topic}"}})'
    )
    for round_ in range(2):  # two rounds, each scraped before the next: rates get two samples
        QuoteProducer(settings.kafka).publish_raw(
            (k, v, None) for k, v in distinct_bar_messages(5_000, start=round_ * 5_000)
        )
        metrics.push("ingest-quotes", settings.metrics.pushgateway_url)
        with Warehouse.connect(settings, "setup") as warehouse:
            setup_warehouse(warehouse, settings)
            drain_prices(settings, warehouse)
        metrics.push("drain-to-warehouse", settings.metrics.pushgateway_url)
        wait_for_sample(prometheus, messages_in, at_least=5_000 * (round_ + 1))
    wait_for_sample(prometheus, "sum(stockpipe_rows_loaded_total)", at_least=10_000)

    targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
    health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
    assert health == {"prometheus": "up", "node": "up", "pushgateway": "up", "kafka": "up"}

    for _dashboard, _title, expr in panel_expressions():
        query(prometheus, expr)  # every panel's query is valid PromQL on real data
    for _name, expr in rule_expressions():
        query(prometheus, expr)

    key_panels = {
        "produce rate": "sum by (topic) (rate("
        'kafka_server_brokertopicmetrics_messagesinpersec_total{topic!=""}[5m]))',
        "rows loaded": "sum by (kind) (stockpipe_rows_loaded_total)",
        "lag": "sum by (partition) (stockpipe_consumer_lag_messages)",
        "broker up": 'up{job="kafka"}',
        "node memory": "node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes",
        "JVM heap": 'sum(jvm_memory_used_bytes{job="kafka", area="heap"})',
        "freshness": "time() - max(stockpipe_newest_bar_timestamp_seconds)",
    }
    panel_exprs = {expr for _, _, expr in panel_expressions()}
    for name, expr in key_panels.items():
        assert expr in panel_exprs, f"{name} is not a dashboard panel"
        wait_for_series(prometheus, expr)  # fails naming the panel's query
    wait_for_series(prometheus, key_panels["produce rate"], lambda rate: rate > 0, "> 0")
    wait_for_series(prometheus, key_panels["broker up"], lambda up: up == 1, "1")


def monitoring_env(monkeypatch: pytest.MonkeyPatch, home: Path, jmx_port: int = 0) -> None:
    """A home of its own with free ports for Prometheus, the Pushgateway, the node exporter."""
    monkeypatch.setenv("STOCKPIPE_HOME", str(home))
    monkeypatch.setenv("STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT", str(jmx_port))
    for name in ("PROMETHEUS_PORT", "PUSHGATEWAY_PORT", "NODE_EXPORTER_PORT"):
        monkeypatch.setenv(f"STOCKPIPE_METRICS__{name}", str(free_port()))


def test_each_home_keeps_its_own_pushed_series_and_scrapes_only_what_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    homes = []
    for name in ("first", "second"):
        monitoring_env(monkeypatch, tmp_path / name)  # the JMX exporter off
        settings = load_settings()
        monitoring = LocalMonitoring(settings)
        gateway = f"127.0.0.1:{settings.metrics.pushgateway_port}"
        try:
            monitoring.up()
            pushed = httpx.get(f"http://{gateway}/metrics", timeout=10).text
            # What another installation pushed is not here; then this one pushes its own.
            assert 'job="first-home-run"' not in pushed
            metrics.push(f"{name}-home-run", gateway)
            config = yaml.safe_load((monitoring.home / "prometheus.yml").read_text())
            assert "kafka" not in {job["job_name"] for job in config["scrape_configs"]}
        finally:
            monitoring.down()
        homes.append(monitoring.home)
    # The Pushgateway kept its state in its home (written when it stopped).
    assert all((home / "pushgateway.data").exists() for home in homes)


def test_a_taken_port_is_named_and_nothing_is_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from stockpipe.local_stack.monitoring import MonitoringError

    monitoring_env(monkeypatch, tmp_path / "home")
    settings = load_settings()
    with socket.socket() as taken:  # another program on Prometheus's port
        taken.bind(("127.0.0.1", settings.metrics.prometheus_port))
        taken.listen()
        monitoring = LocalMonitoring(settings)
        with pytest.raises(MonitoringError) as failed:
            monitoring.up()
    message = str(failed.value)
    assert "STOCKPIPE_METRICS__PROMETHEUS_PORT" in message and "\n" not in message
    # The Pushgateway and the node exporter it started first are stopped again.
    assert monitoring.status() == {
        "pushgateway": False,
        "node-exporter": False,
        "prometheus": False,
    }
