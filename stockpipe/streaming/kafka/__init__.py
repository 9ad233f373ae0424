"""The pipeline's Kafka topology (``topology.yml``: topics, consumer groups, users and ACLs),
read here and by the playbook."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def topology() -> dict[str, Any]:
    """``topology.yml``: ``topics`` (role -> name, partitions, retention_ms),
    ``consumer_groups``, ``users`` (role -> SCRAM user) and ``acls``."""
    return yaml.safe_load(resources.files(__name__).joinpath("topology.yml").read_text())
