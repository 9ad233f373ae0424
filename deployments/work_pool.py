"""Create (or bring up to date) the VM's process work pool.

    .venv/bin/python -m deployments.work_pool [--name stockpipe]

The pool is Prefect's process type with its own default job template, except that flow runs
start as ``<this python> -m deployments.flow_run`` (Prefect's engine without its
integrations) instead of ``python -m prefect.engine``, and no deployment or flow run can
change that command, the environment or the working directory (``LOCKED``). Prints
``created``, ``updated`` or ``unchanged`` (the prefect_worker role reports a change).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

FLOW_RUN_MODULE = "deployments.flow_run"
# The code's directory (this checkout, or the VM's /opt/stockpipe): flow runs start there, so
# `python -m` finds stockpipe, flows and deployments first on sys.path whether or not the
# project is installed into the virtualenv (on the VM it is not: nothing is built there).
PROJECT_DIR = Path(__file__).resolve().parents[1]


# What a deployment or a flow run may not set: the command the worker runs, its environment
# and its directory. Left open (Prefect's default), anyone holding an API key that can
# create a flow run could run any command on the VM as the worker's user.
LOCKED = ("command", "env", "working_dir")


def job_template(python: str = sys.executable, working_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """Prefect's process job template, locked: every flow run starts as ``python -m
    FLOW_RUN_MODULE`` in the worker's own environment, in ``working_dir`` (not a temporary
    directory of the worker's), and job variables other than the template's remaining ones
    (name, labels, stream_output) are refused."""
    from prefect.utilities.processutils import command_to_string
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    configuration, variables = template["job_configuration"], template["variables"]
    configuration["command"] = command_to_string([python, "-m", FLOW_RUN_MODULE])
    configuration["env"] = {}
    configuration["working_dir"] = str(working_dir)
    for name in LOCKED:
        del variables["properties"][name]
    variables["additionalProperties"] = False
    return template


def ensure_work_pool(name: str, python: str = sys.executable) -> str:
    """Make pool ``name`` a process pool with :func:`job_template`.

    Returns:
        "created", "updated" (its job template differed) or "unchanged".
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    template = job_template(python)
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
            return "created"
        if pool.type != "process":
            raise SystemExit(
                f"work pool {name} exists with type {pool.type}; the worker needs a process "
                "pool: delete it (prefect work-pool delete) or choose another prefect_worker_pool"
            )
        if pool.base_job_template == template:
            return "unchanged"
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        return "updated"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="stockpipe", help="the work pool's name")
    args = parser.parse_args(argv)
    print(f"work pool {args.name}: {ensure_work_pool(args.name)}")


if __name__ == "__main__":
    main()
