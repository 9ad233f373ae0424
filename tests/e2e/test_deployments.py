"""prefect.yaml against a real local Prefect server: every deployment and schedule is
created, scheduled times fall in the NYSE session in New York time, and the calendar guard
skips what falls on a holiday or after an early close. One deployment runs through a
worker against the real broker and warehouse."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from prefect.server.schemas.schedules import CronSchedule

from deployments.serve import load_deployment_specs
from stockpipe import market_calendar as mc
from stockpipe.quote_spec import EXCHANGE_TIME_ZONE
from stockpipe.settings import Settings
from tests.support import running_prefect_server, set_up_warehouse

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
NEW_YORK = ZoneInfo("America/New_York")
ONE_DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    with running_prefect_server(tmp_path_factory.mktemp("prefect-home")) as env:
        yield env


def run(env: dict, *argv: str) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def prefect(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run(env, *PREFECT, *args)


def work_pool(env: dict) -> str:
    """The README's step: the process pool whose flow runs start as deployments.flow_run."""
    return run(env, sys.executable, "-m", "deployments.work_pool", "--name", "stockpipe").stdout


def test_deploy_all_creates_every_deployment_with_market_hours_schedules(prefect_server) -> None:
    env = prefect_server
    work_pool(env)
    prefect(env, "--no-prompt", "deploy", "--all")

    api = env["PREFECT_API_URL"]
    deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=60).json()
    found = httpx.post(f"{api}/flows/filter", json={}, timeout=60).json()
    flows = {f["id"]: f["name"] for f in found}
    by_name = {f"{flows[d['flow_id']]}/{d['name']}": d for d in deployments}
    assert set(by_name) == {
        "ingest-quotes/market-minutes",
        "drain-to-warehouse/intraday",
        "drain-to-warehouse/after-close",
        "build-trends/intraday",
        "build-trends/after-close",
        "validate-session/after-close",
        "validate-session/freshness",
        "backfill-history/history",
        "ingest-live-trades/live-trades",
    }
    for name, deployment in by_name.items():
        assert deployment["work_pool_name"] == "stockpipe", name
        assert deployment["enforce_parameter_schema"] is True, name
    # History is backfilled on demand; everything else runs on market-hours schedules.
    # Finnhub's live mode replaces market-minutes when chosen: it starts paused.
    assert by_name["ingest-live-trades/live-trades"]["paused"] is True
    assert by_name["ingest-quotes/market-minutes"]["paused"] is False
    on_demand = by_name.pop("backfill-history/history")
    assert not on_demand["schedules"]
    assert on_demand["parameter_openapi_schema"]["required"] == ["first"]
    for name, deployment in by_name.items():
        assert deployment["parameters"]["market_hours"] in ("in_session", "after_close")
        assert deployment["schedules"], name

    # A fixed week with Thanksgiving (holiday) and its half day, and the week of a DST change.
    weeks = [
        (datetime(2025, 11, 24, tzinfo=UTC), datetime(2025, 11, 29, tzinfo=UTC)),
        (datetime(2025, 3, 6, tzinfo=UTC), datetime(2025, 3, 12, tzinfo=UTC)),
    ]
    for name, deployment in by_name.items():
        kind = deployment["parameters"]["market_hours"]
        times = []
        for schedule in deployment["schedules"]:
            cron = schedule["schedule"]
            assert cron["timezone"] == EXCHANGE_TIME_ZONE
            rule = CronSchedule(cron=cron["cron"], timezone=cron["timezone"])
            for start, end in weeks:
                day = start
                while day < end:  # a day at a time: get_dates stops at 1,000 dates
                    times += asyncio.run(rule.get_dates(n=1000, start=day, end=day + ONE_DAY))
                    day += ONE_DAY
        assert times, name
        for instant in times:
            local = instant.astimezone(NEW_YORK)
            decision = mc.guard(kind, instant)
            if kind == "in_session":
                # Scheduled clock times are always inside 09:30-15:59 New York.
                assert (9, 30) <= (local.hour, local.minute) <= (15, 59), (name, local)
            if local.date().isoformat() == "2025-11-27":
                assert not decision.run and "holiday" in decision.reason
            if (
                kind == "in_session"
                and local.date().isoformat() == "2025-11-28"
                and local.hour >= 13
            ):
                assert not decision.run and "early close" in decision.reason
            if local.date().isoformat() in ("2025-03-07", "2025-03-10") and kind == "in_session":
                assert decision.run  # 09:30 New York before and after the DST change
        if name == "ingest-quotes/market-minutes":
            runs = [t for t in times if mc.guard(kind, t).run]
            # 390 minutes on each full day, 210 on the half day, none on the holiday.
            nov = [t for t in runs if t.month == 11]
            assert len(nov) == 3 * 390 + 210


def test_the_pool_refuses_a_command_environment_or_directory_from_a_deployment_or_run(
    prefect_server,
) -> None:
    """The work pool's job template is locked: whoever holds an API key that may create
    deployments or flow runs cannot make the VM's worker run a command of theirs."""
    env = prefect_server
    work_pool(env)
    api = env["PREFECT_API_URL"]
    flow = httpx.post(f"{api}/flows/", json={"name": "locked-pool-probe"}, timeout=60).json()

    def deployment(name: str, job_variables: dict) -> httpx.Response:
        body = {"name": name, "flow_id": flow["id"], "work_pool_name": "stockpipe"}
        return httpx.post(f"{api}/deployments/", json=body | {"job_variables": job_variables})

    for variable, value in [
        ("command", "touch /tmp/owned"),
        ("env", {"PYTHONSTARTUP": "/tmp/owned.py"}),
        ("working_dir", "/tmp"),
    ]:
        refused = deployment(f"probe-{variable}", {variable: value})
        assert refused.status_code == 422, refused.text
        assert f"'{variable}' was unexpected" in refused.text
        allowed = deployment(f"probe-{variable}-run", {}).json()
        run = httpx.post(
            f"{api}/deployments/{allowed['id']}/create_flow_run",
            json={"job_variables": {variable: value}},
            timeout=60,
        )
        assert run.status_code == 422, run.text
    # What the template leaves open still works.
    assert deployment("probe-open", {"stream_output": False}).status_code == 201


def test_a_deployment_runs_through_a_worker_and_a_guarded_run_is_skipped(
    prefect_server, env_settings: Settings
) -> None:
    env = {
        **prefect_server,
        **{k: v for k, v in os.environ.items() if k.startswith("STOCKPIPE_")},
        "STOCKPIPE_PROJECT_DIR": str(PROJECT),
    }
    set_up_warehouse(env_settings)  # the admin's one-time step; flows run no DDL
    work_pool(env)
    prefect(
        env,
        "--no-prompt",
        "deploy",
        "--name",
        "market-minutes",
        "--name",
        "drain-to-warehouse/intraday",
        "--name",
        "drain-to-warehouse/after-close",
    )
    session = mc.session("2025-11-26")
    prefect(
        env,
        "deployment",
        "run",
        "ingest-quotes/market-minutes",
        "--param",
        "market_hours=ignore",
        "--param",
        f"start={session.open.isoformat()}",
        "--param",
        f"end={session.minutes[30].isoformat()}",
        "--param",
        'symbols=["AAPL","MSFT"]',
    )
    # The guard decides by the run's scheduled time, not the clock of the machine running
    # the test: both drains as of a minute in a session (in the past, so both are due for
    # the worker now; two deployments, as each takes one run at a time). The intraday one
    # runs; the after-close one is skipped.
    open_minute = session.minutes[60].to_pydatetime()
    assert mc.guard("in_session", open_minute).run
    assert not mc.guard("after_close", open_minute).run
    for deployment in ("drain-to-warehouse/intraday", "drain-to-warehouse/after-close"):
        prefect(env, "deployment", "run", deployment, "--start-at", open_minute.isoformat())
    prefect(env, "worker", "start", "--pool", "stockpipe", "--run-once")

    api = env["PREFECT_API_URL"]
    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=60).json()
    # Only the runs made here by hand, not the scheduler's future runs.
    states = sorted(
        (r["parameters"].get("market_hours"), r["state"]["type"], r["state"]["name"])
        for r in runs
        if not r["auto_scheduled"]
    )
    assert ("ignore", "COMPLETED", "Completed") in states
    guarded = sorted(s for s in states if s[0] != "ignore")
    assert guarded == [
        ("after_close", "COMPLETED", "Skipped"),
        ("in_session", "COMPLETED", "Completed"),
    ]
    # The worker's run published the bars to the real broker.
    from tests.support import topic_messages

    assert len(topic_messages(env_settings)) == 2 * 30


def test_serve_registers_every_deployment_of_prefect_yaml(tmp_path: Path) -> None:
    with running_prefect_server(tmp_path / "prefect-home") as env:
        served = serve_briefly(env)
    assert len(served) == len(load_deployment_specs()) == 9, list(served)
    assert served["ingest-live-trades/live-trades"]["paused"] is True
    ingest = served["ingest-quotes/market-minutes"]
    assert ingest["parameters"] == {"market_hours": "in_session"}
    # Its schedules as prefect.yaml writes them (which minutes they cover:
    # test_deploy_all_creates_every_deployment_with_market_hours_schedules).
    spec = next(d for d in load_deployment_specs() if d["name"] == "market-minutes")
    registered = sorted(
        (s["schedule"]["cron"], s["schedule"]["timezone"]) for s in ingest["schedules"]
    )
    assert registered == sorted((s["cron"], s["timezone"]) for s in spec["schedules"])


def serve_briefly(env: dict) -> dict:
    server = subprocess.Popen(
        [sys.executable, "-m", "deployments.serve"],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    api = env["PREFECT_API_URL"]
    try:
        deadline = time.monotonic() + 300  # a bound for a broken setup
        served: dict = {}
        while time.monotonic() < deadline and len(served) < len(load_deployment_specs()):
            time.sleep(1)
            # A busy machine's server answers slowly: generous timeouts, not a pace.
            flows = {
                f["id"]: f["name"]
                for f in httpx.post(f"{api}/flows/filter", json={}, timeout=60).json()
            }
            served = {
                f"{flows[d['flow_id']]}/{d['name']}": d
                for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=60).json()
                if d["work_pool_name"] is None  # served by the process, not a work pool
            }
        assert server.poll() is None, server.stdout.read() if server.stdout else ""
    finally:
        server.terminate()
        server.wait(30)
    return served
