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


def _probe(script: str, prepare: str) -> tuple[object, set[str]]:
    """Run ``script`` after ``prepare`` in a fresh interpreter: (what it found, top-level
    modules imported)."""
    result = subprocess.run(
        [sys.executable, "-c", script.format(prepare=prepare)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    found, modules = json.loads(result.stdout.strip().splitlines()[-1])
    return found, set(modules)


def test_the_launcher_finds_the_process_worker_without_importing_integrations() -> None:
    worker, modules = _probe(
        PROBE, "from deployments.worker import skip_integration_imports; skip_integration_imports()"
    )
    assert worker == "ProcessWorker"
    assert modules & INTEGRATIONS == set()


BLOCK_PROBE = """
import json, sys
{prepare}
from prefect.blocks.core import Block
from prefect_snowflake import SnowflakeConnector  # what the drain imports to load its block
found = Block.get_block_class_from_key("snowflake-connector")
print(json.dumps([found is SnowflakeConnector, sorted({{m.split(".")[0] for m in sys.modules}})]))
"""


def test_a_flow_run_started_by_the_launcher_finds_its_block_class_without_the_others() -> None:
    # deployments.flow_run: a block lookup (as SnowflakeConnector.load makes one) still finds
    # the class the flow imported, and imports no other integration.
    found, modules = _probe(
        BLOCK_PROBE,
        "from deployments.worker import skip_integration_imports; skip_integration_imports()",
    )
    assert found
    assert modules & {"prefect_aws", "prefect_dbt", "prefect_shell", "dbt"} == set()
