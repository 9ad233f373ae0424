"""The prometheus role run here: promtool accepts what it renders, Prometheus starts with the
flags it writes and loads the project's rules, and a second run changes nothing."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from stockpipe.local_stack.processes import free_port
from tests.ansible.playbook import ANSIBLE_DIR, run_playbook
from tests.support import wait_until_serving

PLAYBOOK = str(Path(__file__).parent / "playbooks" / "prometheus_local.yml")
REPO = ANSIBLE_DIR.parent


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory):
    assert shutil.which("promtool"), "promtool is missing (deployments/local/setup.sh installs it)"
    root = tmp_path_factory.mktemp("vm")
    port = free_port()
    variables = {
        "prometheus_packages": [],
        "prometheus_service_enabled": False,
        "prometheus_config_dir": str(root / "etc/prometheus"),
        "prometheus_defaults_dir": str(root / "etc/default"),
        "prometheus_listen_address": f"127.0.0.1:{port}",
        "prometheus_pushgateway_persistence_file": str(root / "pushgateway.data"),
        "kafka_jmx_exporter_port": 7071,
    }
    (root / "etc/prometheus").mkdir(parents=True)  # made by the Debian package
    (root / "etc/default").mkdir(parents=True)
    args = ["-e", json.dumps(variables)]
    first = run_playbook(PLAYBOOK, *args)
    assert first.returncode == 0, first.failures() or first.output[-4000:]
    return root, port, args, first


def test_promtool_accepts_the_rendered_config_and_rules(rendered):
    root, port, *_ = rendered
    config = root / "etc/prometheus/prometheus.yml"
    check = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout + check.stderr
    rules = sorted((root / "etc/prometheus/rules").glob("*.rules.yml"))
    assert [r.name for r in rules] == ["stockpipe.rules.yml"]
    check = subprocess.run(
        ["promtool", "check", "rules", *map(str, rules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    text = config.read_text()
    for target in (f"127.0.0.1:{port}", "127.0.0.1:9100", "127.0.0.1:9091", "127.0.0.1:7071"):
        assert f'"{target}"' in text


def test_the_exporters_listen_on_loopback_only(rendered):
    root, *_, first = rendered
    for name in ("prometheus", "prometheus-node-exporter", "prometheus-pushgateway"):
        args = (root / "etc/default" / name).read_text()
        assert "--web.listen-address=127.0.0.1:" in args, name
    # ... from their first start: Debian starts each service as its package installs, so
    # the flags are written before the packages are.
    order = [task["task"]["name"] for task in first.tasks]
    install = next(i for i, name in enumerate(order) if "Install Prometheus" in name)
    flags = [i for i, name in enumerate(order) if name.endswith("flags")]
    assert len(flags) == 3 and max(flags) < install, order


def test_prometheus_starts_with_the_written_flags_and_loads_the_rules(rendered):
    root, port, *_ = rendered
    line = next(
        line
        for line in (root / "etc/default/prometheus").read_text().splitlines()
        if line.startswith("ARGS=")
    )
    flags = shlex.split(shlex.split(line.removeprefix("ARGS="))[0])
    assert "--storage.tsdb.retention.time=7d" in flags
    process = subprocess.Popen(
        ["prometheus", *flags, f"--storage.tsdb.path={root / 'tsdb'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Ready once its configuration and rules are loaded (the bound is for a broken one).
        wait_until_serving(process, f"http://127.0.0.1:{port}/-/ready", "Prometheus")
        rules = httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=30).json()
        groups = rules["data"]["groups"]
        names = {rule["name"] for group in groups for rule in group["rules"]}
        assert names, "Prometheus did not serve the rules"
        assert {"KafkaDown", "stockpipe:market_open"} <= names
    finally:
        process.terminate()
        process.wait(30)


def test_a_second_run_changes_nothing(rendered):
    *_, args, first = rendered
    assert first.changed() > 0
    again = run_playbook(PLAYBOOK, *args)
    assert again.returncode == 0, again.failures()
    assert again.changed() == 0, again.changed_tasks()
