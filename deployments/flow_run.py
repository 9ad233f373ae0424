"""A flow run as the VM's work pool starts it: ``python -m prefect.engine``, without
importing every installed Prefect integration.

    .venv/bin/python -m deployments.flow_run <flow-run-id>   (or PREFECT__FLOW_RUN_ID)

Loading a block (the drain's Snowflake connector block) makes Prefect import every package
that registers a ``prefect.collections`` entry point first (boto3 through prefect-aws,
dbt-core through prefect-dbt), whether the run uses them or not: ~40 MB more at the peak of
a Snowflake drain run on the VM (README "Memory budget"). The blocks the flows load are
classes the flows import themselves, so the registry has them without the loader. The pool's
flow-run command is set to this module by ``deployments.work_pool``.
"""

from __future__ import annotations

import runpy

from deployments.worker import skip_integration_imports


def main() -> None:
    skip_integration_imports()
    runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
