"""Metrics reach a real Pushgateway, failed runs included; an unreachable one fails nothing."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from stockpipe import metrics
from stockpipe.processes import free_port


def test_a_failed_run_still_pushes_and_says_it_failed(pushgateway: str) -> None:
    with pytest.raises(RuntimeError), metrics.pushed_at_end("metrics-test-flow", pushgateway):
        raise RuntimeError("the run failed")
    text = httpx.get(f"http://{pushgateway}/metrics", timeout=5).text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("stockpipe_run_success{")
        and 'job="metrics-test-flow"' in line
        and 'flow="metrics-test-flow"' in line
    )
    assert line.endswith(" 0")


def test_an_unreachable_pushgateway_does_not_fail_the_run() -> None:
    registry = CollectorRegistry()
    Counter("stockpipe_probe_total", "probe", registry=registry).inc()
    assert metrics.push("probe", f"127.0.0.1:{free_port()}", registry=registry) is False
    assert metrics.push("probe", None, registry=registry) is False
