"""The Prefect flows against a real Prefect API (a temporary server), the real broker and
the embedded warehouse."""

from __future__ import annotations

import _thread
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.drain import drain_to_warehouse
from flows.ingest import ingest_live_trades, ingest_quotes
from flows.trends import build_trends
from flows.validate import validate_session
from stockpipe import market_calendar as mc
from stockpipe.settings import Settings, load_settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from tests.fake_providers import FakeFinnhubSocket
from tests.support import read_topic, set_up_warehouse

pytestmark = pytest.mark.e2e
SESSION = mc.session("2025-11-26")


def artifact(key: str):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key}"
    return found[0]


def artifact_rows(key: str, flow_run_id) -> list[dict]:
    """The rows of the table artifact ``key`` that the flow run made."""
    from prefect.client.schemas.filters import ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    assert len(found) == 1, f"{len(found)} artifacts {key} of flow run {flow_run_id}"
    data = found[0].data
    return json.loads(data) if isinstance(data, str) else data


def task_names(flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [run.name for run in runs]


def counted(name: str, **labels: str) -> float:
    """The process's own value of the counter sample ``name`` (0 before its first count)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def pushed(address: str) -> str:
    return httpx.get(f"http://{address}/metrics", timeout=5).text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the pushed sample ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in the Pushgateway")


def test_ingest_drain_trends_flows_with_dead_letters_in_the_summary(
    prefect_api, env_settings: Settings, pushgateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOCKPIPE_METRICS__PUSHGATEWAY_URL", pushgateway)
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", "AAPL,MSFT")
    # The flows' counters are the process's, which other tests fed too: what this test
    # checks is each one's change.
    before = {
        "fetched": counted("stockpipe_quotes_fetched_total", source="simulated"),
        "inserted": counted(
            "stockpipe_rows_loaded_total", table="RAW.STOCK_PRICES", kind="inserted"
        ),
        "invalid_json": counted("stockpipe_dead_letters_total", reason="invalid_json"),
    }
    result = ingest_quotes(start=SESSION.open, end=SESSION.close, symbols=["AAPL", "MSFT"])
    assert result["published"] == 780 and result["rejected"] == {}
    QuoteProducer(env_settings.kafka).publish_raw(
        [(b"AAPL", b"{broken", None), (b"MSFT", b'{"symbol": "MSFT"}', None)]
    )

    set_up_warehouse(load_settings())  # the admin's one-time step; the flows run no DDL
    drained = drain_to_warehouse()
    assert drained["inserted"] == 780
    assert drained["dead_lettered"] == {"invalid_json": 1, "missing_ts": 1}
    table = artifact("drain-dead-letters")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert {r["reason"]: r["messages"] for r in rows} == {"invalid_json": 1, "missing_ts": 1}
    assert "2 to the dead-letter topic" in artifact("drain-summary").data
    # The run showed its progress through the backlog while it ran; it ended at 100 %.
    assert float(artifact("drain-progress").data) == 100.0

    trends_run = build_trends(report=True, return_state=True)
    latest = trends_run.result()
    assert {row["symbol"] for row in latest} == {"AAPL", "MSFT"}
    assert all(row["bar_count"] == 390 for row in latest)
    # dbt's own runner by default: no task per dbt node, each model and test a row of the
    # run's dbt-build artifact instead.
    run_id = trends_run.state_details.flow_run_id
    tasks = task_names(run_id)
    assert tasks and not [t for t in tasks if "daily_bars" in t or "minute_bars" in t], tasks
    nodes = {row["node"]: row for row in artifact_rows("dbt-build", run_id)}
    for node in ("valid_bars", "minute_bars", "daily_bars", "daily_rsi", "daily_trends"):
        assert nodes.get(node, {}).get("status") == "success", f"{node} in {sorted(nodes)}"
    assert [n for n in nodes if "unique_key_daily_bars" in n], sorted(nodes)
    # Asked for, each dbt model and test runs as a task of its own (the Prefect UI's per-node
    # states and logs) and builds the same marts.
    tasked = build_trends(full_refresh=True, dbt_node_tasks=True, return_state=True)
    rebuilt = tasked.result()
    assert [(r["symbol"], r["bar_count"], r["last_close"]) for r in rebuilt] == [
        (r["symbol"], r["bar_count"], r["last_close"]) for r in latest
    ]
    tasks = " ".join(task_names(tasked.state_details.flow_run_id))
    for node in ("valid_bars", "minute_bars", "daily_bars", "daily_rsi", "daily_trends"):
        assert node in tasks, f"no task for model {node} in: {tasks}"
    assert "unique_key_daily_bars" in tasks
    assert artifact("latest-trends")
    assert artifact("top-movers")
    report = artifact("trends-report")
    assert report.type == "markdown" and "Trends report (2 symbols)" in report.data
    assert (load_settings().report_dir / "index.html").as_uri() in report.data

    state = validate_session(session=SESSION.day, return_state=True)
    assert state.is_completed(), state.message
    results = artifact("validation-results")
    rows = json.loads(results.data) if isinstance(results.data, str) else results.data
    assert rows and all(r["result"] in ("pass", "skipped") for r in rows)

    # Every run pushed its metrics to the real Pushgateway, grouped by flow: this run's bars
    # and dead letters, exactly.
    text = pushed(pushgateway)
    produced = sample(
        text,
        "stockpipe_messages_produced_total",
        job="ingest-quotes",
        topic=env_settings.kafka.prices_topic,  # this test's own topic: nobody else's count
    )
    assert produced == 780
    fetched = sample(
        text, "stockpipe_quotes_fetched_total", job="ingest-quotes", source="simulated"
    )
    assert fetched - before["fetched"] == 780
    inserted = sample(
        text, "stockpipe_rows_loaded_total", job="drain-to-warehouse", kind="inserted"
    )
    assert inserted - before["inserted"] == 780
    invalid = sample(
        text, "stockpipe_dead_letters_total", job="drain-to-warehouse", reason="invalid_json"
    )
    assert invalid - before["invalid_json"] == 1
    assert (
        sample(
            text,
            "stockpipe_consumer_lag_messages",
            job="drain-to-warehouse",
            topic=env_settings.kafka.prices_topic,
            partition="0",
        )
        == 0
    )
    for suite in ("raw_stock_prices", "staging_stock_prices", "marts_daily_bars"):
        assert (
            sample(text, "stockpipe_validation_success", job="validate-session", suite=suite) == 1
        )
    for flow in ("ingest-quotes", "drain-to-warehouse", "build-trends", "validate-session"):
        assert sample(text, "stockpipe_run_success", job=flow, flow=flow) == 1
        assert sample(text, "stockpipe_last_success_timestamp_seconds", job=flow, flow=flow) > 0
    assert (
        sample(text, "stockpipe_warehouse_load_duration_seconds_count", job="drain-to-warehouse")
        >= 1
    )

    # A failed build fails the run and still lists every node, the failed one with dbt's
    # message (a 5-minute bar in RAW breaks the source's accepted_values test).
    with Warehouse.connect(load_settings()) as warehouse:
        warehouse.execute(
            "insert into RAW.STOCK_PRICES select * replace ('5m' as bar_interval) "
            "from RAW.STOCK_PRICES limit 1"
        )
    failed = build_trends(full_refresh=True, return_state=True)
    assert failed.is_failed() and "accepted_values" in failed.message, failed.message
    nodes = artifact_rows("dbt-build", failed.state_details.flow_run_id)
    broken = [row for row in nodes if row["status"] == "fail"]
    assert [row["node"] for row in broken] == [
        "source_accepted_values_raw_stock_prices_bar_interval__1m__1d"
    ], broken
    assert broken[0]["kind"] == "test" and "1 result" in broken[0]["message"], broken
    # ... and its push says so.
    assert sample(pushed(pushgateway), "stockpipe_run_success", job="build-trends") == 0


def test_the_live_trades_flow_publishes_each_closed_minute_until_stopped(
    prefect_api, env_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The paused live-trades deployment's flow as it runs: Finnhub's websocket (a local
    replay of a minute that has ended) -> that minute's bars on the prices topic, the
    watchlist subscribed; it follows until the session closes, so the test stops it as a
    person does (Ctrl-C), once the bars are on the topic."""
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    start_ms = int(minute.timestamp() * 1000)
    trades = [
        ("AAPL", 190.5, 100.0, start_ms + 1_000),
        ("MSFT", 410.25, 50.0, start_ms + 2_000),
        ("AAPL", 190.75, 20.0, start_ms + 30_000),
    ]
    socket = FakeFinnhubSocket("flow-key-7", trades, end_ms=start_ms + 60_000).start()
    for name, value in {
        "SOURCE__KIND": "finnhub",
        "SOURCE__FINNHUB_API_KEY": "flow-key-7",
        "SOURCE__FINNHUB_WS_URL": socket.url,
        "SOURCE__WATCHLIST": "AAPL,MSFT",
    }.items():
        monkeypatch.setenv(f"STOCKPIPE_{name}", value)
    published: list = []

    def stop_once_published() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(published) < 2:
            published[:] = read_topic(env_settings, env_settings.kafka.prices_topic)
            time.sleep(0.2)
        _thread.interrupt_main()  # Ctrl-C

    watcher = threading.Thread(target=stop_once_published, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            ingest_live_trades()
    finally:
        watcher.join(10)
        socket.stop()
    bars = {
        (row["symbol"], row["open"], row["high"], row["low"], row["close"], row["volume"])
        for row in (json.loads(message.value()) for message in published)
    }
    assert bars == {
        ("AAPL", 190.5, 190.75, 190.5, 190.75, 120.0),
        ("MSFT", 410.25, 410.25, 410.25, 410.25, 50.0),
    }
    assert sorted(set(socket.subscriptions)) == ["AAPL", "MSFT"]
