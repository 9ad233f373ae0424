"""Grafana's provisioning, checked offline (Grafana itself cannot be installed here: its apt
repository is out of reach).

- The dashboards against Grafana's dashboard schema (grafana-foundation-sdk's models,
  generated from Grafana's own schema; tests/ansible/grafana_schema.py).
- The grafana.grafana role run in check mode with the VM's variables: its preflight accepts
  them, and the datasource and dashboard provider files it would write follow Grafana's
  documented provisioning format and point at what the other roles install.
- The stockpipe_dashboards role run for real: the dashboards land in the provider's folder.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from tests.ansible.grafana_schema import dashboard_errors
from tests.ansible.playbook import ANSIBLE_DIR, run_playbook

DASHBOARDS = sorted((ANSIBLE_DIR.parent / "deployments/monitoring/dashboards").glob("*.json"))
PLAYBOOK = str(Path(__file__).parent / "playbooks" / "grafana_check.yml")
DASHBOARDS_PLAYBOOK = str(Path(__file__).parent / "playbooks" / "stockpipe_dashboards_local.yml")
GROUP_VARS = yaml.safe_load((ANSIBLE_DIR / "group_vars/stockpipe_vm/main.yml").read_text())

# https://grafana.com/docs/grafana/latest/administration/provisioning/#data-sources
DATASOURCE_KEYS = {
    "name", "type", "access", "orgId", "uid", "url", "user", "database", "basicAuth",
    "basicAuthUser", "withCredentials", "isDefault", "jsonData", "secureJsonData", "version",
    "editable",
}  # fmt: skip
# https://grafana.com/docs/grafana/latest/administration/provisioning/#dashboards
PROVIDER_KEYS = {
    "name", "orgId", "type", "folder", "folderUid", "disableDeletion", "updateIntervalSeconds",
    "allowUiUpdates", "options",
}  # fmt: skip


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_dashboard_follows_grafanas_dashboard_schema(path: Path) -> None:
    dashboard = json.loads(path.read_text())

    assert dashboard_errors(dashboard) == []
    assert 8 <= len(dashboard["uid"]) <= 40
    # Every query goes to the Prometheus picked in the dashboard's datasource variable.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_the_schema_check_finds_what_grafana_would_reject_or_ignore() -> None:
    dashboard = json.loads(DASHBOARDS[0].read_text())
    broken = copy.deepcopy(dashboard)
    broken["refersh"] = "30s"  # misspelt: Grafana ignores it
    broken["panels"][0]["gridPos"]["h"] = "8"
    broken["panels"][0]["options"]["legend"]["displayMode"] = "sideways"
    broken["panels"][1]["type"] = "timeseries-graph"

    errors = dashboard_errors(broken)

    assert "$.refersh: not in the schema" in errors
    assert "$.panels[0].grid_pos.h: '8' is not an integer" in errors
    assert any(e.startswith("$.panels[0].options.legend.display_mode: 'sideways'") for e in errors)
    assert "$.panels[1].type: 'timeseries-graph' is not a Grafana panel plugin" in errors


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """What the grafana role would write, by destination (check mode, diffs)."""
    import ansible_collections.grafana.grafana as collection

    role = Path(next(iter(collection.__path__))) / "roles/grafana"
    variables = {
        "grafana_role_defaults": str(role / "defaults/main.yml"),
        "vault_grafana_admin_password": "grafana-secret-4",
    }
    run = run_playbook(PLAYBOOK, "--check", "--diff", "-e", json.dumps(variables))
    assert run.returncode == 0, run.failures() or run.output[-4000:]
    assert "grafana-secret-4" not in run.output
    files = {}
    for task in run.tasks:
        for result in task["hosts"].values():
            for item in result.get("results", [result]):
                diffs = item.get("diff") or []
                for diff in diffs if isinstance(diffs, list) else [diffs]:
                    if isinstance(diff.get("after"), str) and diff.get("after_header"):
                        files[diff["after_header"]] = diff["after"]
    return files


def test_the_datasource_file_is_grafanas_format_and_points_at_prometheus(rendered) -> None:
    provisioning = yaml.safe_load(rendered["/etc/grafana/provisioning/datasources/ansible.yml"])

    assert provisioning["apiVersion"] == 1
    (datasource,) = provisioning["datasources"]
    assert set(datasource) <= DATASOURCE_KEYS
    assert datasource["type"] == "prometheus" and datasource["access"] in ("proxy", "direct")
    assert datasource["isDefault"] is True
    prometheus = yaml.safe_load((ANSIBLE_DIR / "roles/prometheus/defaults/main.yml").read_text())
    assert datasource["url"] == f"http://{prometheus['prometheus_listen_address']}"


def test_the_dashboard_provider_reads_the_folder_the_dashboards_are_copied_to(
    rendered, tmp_path: Path
) -> None:
    provisioning = yaml.safe_load(rendered["/etc/grafana/provisioning/dashboards/ansible.yml"])

    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert set(provider) <= PROVIDER_KEYS
    assert provider["type"] == "file"
    assert set(provider["options"]) <= {"path", "foldersFromFilesStructure"}
    ours = yaml.safe_load(
        (ANSIBLE_DIR / "roles/stockpipe_dashboards/defaults/main.yml").read_text()
    )
    assert provider["options"]["path"] == ours["stockpipe_dashboards_dest"]

    # The stockpipe_dashboards role, for real, into a folder standing in for that one.
    variables = {"stockpipe_dashboards_dest": str(tmp_path / "dashboards")}
    variables["stockpipe_dashboards_group"] = tmp_path.group()
    first = run_playbook(DASHBOARDS_PLAYBOOK, "-e", json.dumps(variables))
    assert first.returncode == 0, first.failures() or first.output[-4000:]
    copied = sorted((tmp_path / "dashboards").iterdir())
    assert [p.name for p in copied] == [p.name for p in DASHBOARDS]
    assert all(c.read_bytes() == d.read_bytes() for c, d in zip(copied, DASHBOARDS, strict=True))
    assert all(c.stat().st_mode & 0o777 == 0o644 for c in copied)
    again = run_playbook(DASHBOARDS_PLAYBOOK, "-e", json.dumps(variables))
    assert again.returncode == 0 and again.changed() == 0, again.changed_tasks()


def test_the_vms_grafana_listens_on_loopback_only_and_phones_nowhere() -> None:
    ini = GROUP_VARS["grafana_ini"]
    assert ini["server"]["http_addr"] == "127.0.0.1"
    assert ini["analytics"] == {"reporting_enabled": False, "check_for_updates": False}
    assert ini["security"]["admin_password"] == "{{ vault_grafana_admin_password }}"
