"""The Prefect process worker, started without importing every installed Prefect integration.

    .venv/bin/python -m deployments.worker start --pool stockpipe --type process --limit 1

Takes the arguments of ``prefect worker``. Prefect's worker imports each installed package
that registers a ``prefect.collections`` entry point when it starts (prefect-aws,
prefect-snowflake, prefect-dbt, prefect-shell: boto3, the Snowflake connector and dbt-core),
only to list them in its metadata, memory the worker then holds for as long as it runs. On
the e2-micro that is a fifth of the machine (README "Memory budget"), so the VM's unit starts
the worker through this module, which tells Prefect's loader the collections are loaded
already; its flow runs start the same way (``deployments.flow_run``).
"""

from __future__ import annotations

import sys


def skip_integration_imports() -> None:
    """Make Prefect's collection loader a no-op for this process.

    Prefect caches what it loaded in a module global and returns the cache when set (prefect
    3.8, ``prefect._internal.plugins.collections``); an empty cache means nothing is imported.
    The process worker type is Prefect's own and needs none of them.
    """
    from prefect._internal.plugins import collections

    collections._collections = {}


def main(argv: list[str] | None = None) -> int | None:
    """``prefect worker <argv>`` (default: this process's arguments)."""
    skip_integration_imports()
    from prefect.cli import app

    sys.argv = ["prefect", "worker", *(sys.argv[1:] if argv is None else argv)]
    return app()


if __name__ == "__main__":
    sys.exit(main())
