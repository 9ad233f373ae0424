"""Metrics reach a real Pushgateway, failed runs included; an unreachable one fails nothing."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from stockpipe import metrics
from stockpipe.local_stack.processes import free_port


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


def test_the_following_drain_loads_what_arrives_after_it_caught_up_and_serves_metrics(
    env_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import subprocess
    import sys
    import time

    from stockpipe.streaming.producer import QuoteProducer
    from tests.support import distinct_bar_messages, set_up_warehouse

    producer = QuoteProducer(env_settings.kafka)
    producer.publish_raw((k, v, None) for k, v in distinct_bar_messages(2_000))
    set_up_warehouse(env_settings)
    port = free_port()
    monkeypatch.setenv("STOCKPIPE_METRICS__PORT", str(port))
    drain = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "drain", "--follow"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def wait_until_loaded(count: int) -> str:
        loaded, text = 0.0, ""
        deadline = time.monotonic() + 120  # a bound for a broken drain, not a pace
        while time.monotonic() < deadline and loaded < count:
            time.sleep(0.5)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            loaded = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("stockpipe_rows_loaded_total{") and 'kind="inserted"' in line
            )
        assert loaded == count
        return text

    try:
        text = wait_until_loaded(2_000)
        assert "stockpipe_warehouse_sessions_total{" in text
        # Caught up with every partition's end: what is published now is loaded too.
        producer.publish_raw((k, v, None) for k, v in distinct_bar_messages(500, start=2_000))
        wait_until_loaded(2_500)
        assert drain.poll() is None  # still following the topic
    finally:
        drain.terminate()
        drain.wait(30)
