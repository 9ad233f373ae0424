"""Each deployment of prefect.yaml can be named the way the README and Prefect's own output
name it, ``<flow name>/<deployment name>``: ``prefect deploy --name`` finds a deployment by
its entrypoint function's name (Prefect matches ``drain-to-warehouse`` against the function
``drain_to_warehouse``), so each flow's function has the flow's name. A renamed function once
left ``prefect deploy --name drain-to-warehouse/intraday`` deploying nothing."""

from __future__ import annotations

import pytest

from deployments.serve import flow_of, load_deployment_specs

SPECS = load_deployment_specs()


@pytest.mark.parametrize("spec", SPECS, ids=[s["name"] for s in SPECS])
def test_a_deployments_function_has_its_flows_name(spec: dict) -> None:
    function = spec["entrypoint"].split(":")[-1]
    assert flow_of(spec["entrypoint"]).name == function.replace("_", "-"), spec["entrypoint"]


def test_the_demo_flow_is_named_as_its_function() -> None:
    from flows.demo import demo_session

    assert demo_session.name == "demo-session"
