"""The stockpipe.gcp modules import only the Compute service they call: the package's own
``__init__`` imports the client of every service, which was most of each provision task."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / "ansible" / "collections"

USE_ONE_SERVICE = """
import sys
from ansible_collections.stockpipe.gcp.plugins.module_utils.gcp_client import compute_v1
from google.cloud.compute_v1.services.instances import InstancesClient
from google.cloud.compute_v1.types import compute

assert compute_v1.InstancesClient is InstancesClient
assert compute_v1.Instance is compute.Instance and compute_v1.Tags is compute.Tags
loaded = sorted(
    name.rsplit(".", 1)[-1] for name in sys.modules
    if name.startswith("google.cloud.compute_v1.services.") and name.count(".") == 4
)
print(",".join(loaded))
try:
    compute_v1.NoSuchType
except AttributeError as exc:
    print("AttributeError:", exc)
"""


def test_a_module_loads_only_the_compute_service_it_uses() -> None:
    run = subprocess.run(
        [sys.executable, "-c", USE_ONE_SERVICE],
        cwd=COLLECTIONS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    loaded, error = run.stdout.splitlines()
    # The service it calls (and what that one needs), not the ~100 of the package: which few
    # else a client version loads is the library's business.
    services = loaded.split(",")
    assert "instances" in services and len(services) <= 5, services
    assert "NoSuchType" in error  # an unknown name is still an AttributeError
