"""Serve every deployment of prefect.yaml from one local process (no work pool, no worker).

    .venv/bin/prefect server start          # in one terminal: the UI at http://127.0.0.1:4200
    .venv/bin/python -m deployments.serve   # in another: runs the flows on their schedules

prefect.yaml stays the one description of the deployments: this reads its entrypoints,
parameters and schedules and serves them with ``prefect.serve``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.schedules import Cron

PROJECT_DIR = Path(__file__).resolve().parents[1]


def load_deployment_specs(path: Path = PROJECT_DIR / "prefect.yaml") -> list[dict[str, Any]]:
    """The deployments of prefect.yaml (anchors resolved)."""
    return yaml.safe_load(path.read_text())["deployments"]


def flow_of(entrypoint: str):
    module_path, flow_name = entrypoint.split(":")
    module = ".".join(Path(module_path).with_suffix("").parts)
    return getattr(importlib.import_module(module), flow_name)


def build_deployments(specs: list[dict[str, Any]]) -> list:
    deployments = []
    for spec in specs:
        schedules = [
            Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
            for s in spec.get("schedules") or []
        ]
        deployments.append(
            flow_of(spec["entrypoint"]).to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters=spec.get("parameters") or {},
                schedules=schedules,
                paused=spec.get("paused"),
                enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
            )
        )
    return deployments


def main() -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    serve(*build_deployments(load_deployment_specs()))


if __name__ == "__main__":
    main()
