"""deployments.worker: the VM's Prefect worker starts without importing Prefect's
integrations (boto3, the Snowflake connector, dbt-core), and still finds the process worker."""

from __future__ import annotations

import json
import subprocess
import sys

INTEGRATIONS = {"prefect_aws", "prefect_dbt", "prefect_snowflake", "prefect_shell", "dbt"}
PROBE = """
import json, sys
{prepare}
from prefect.cli._worker_utils import _load_worker_class
worker = _load_worker_class("process")
print(json.dumps([worker.__name__, sorted({{m.split(".")[0] for m in sys.modules}})]))
"""


def _probe(prepare: str) -> tuple[str, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(prepare=prepare)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    worker, modules = json.loads(result.stdout.strip().splitlines()[-1])
    return worker, set(modules)


def test_the_launcher_finds_the_process_worker_without_importing_integrations() -> None:
    worker, modules = _probe(
        "from deployments.worker import skip_integration_imports; skip_integration_imports()"
    )
    assert worker == "ProcessWorker"
    assert modules & INTEGRATIONS == set()


def test_prefects_own_worker_start_imports_them() -> None:
    # What the launcher saves: plain `prefect worker start` loads every installed one.
    worker, modules = _probe("")
    assert worker == "ProcessWorker"
    assert {"prefect_aws", "prefect_snowflake", "prefect_dbt"} <= modules
