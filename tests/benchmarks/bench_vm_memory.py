"""Benchmark: the e2-micro's memory budget, measured on this machine for what runs here.

    .venv/bin/python -m tests.benchmarks.bench_vm_memory [--messages 100000] [--max-records 5000]
        [--warehouse embedded|snowflake] [--live] [--symbols N]

Starts, with the settings the Ansible roles give the VM:
  * Kafka with the kafka role's heap and JVM options (ansible/roles/kafka/defaults/main.yml)
    and the JMX exporter agent;
  * Prometheus (scraping every target at the role's 15 s), the Pushgateway and the node
    exporter (the Debian packages the prometheus role installs);
  * a Prefect worker (`python -m deployments.worker start`, as the stockpipe-worker unit runs
    it) against a
    local `prefect server` that stands in for Prefect Cloud (the server is not counted: it
    does not run on the VM);
then produces a backlog and runs, one after another, each flow run the VM's worker starts
(prefect.yaml): the drain, the trend build (intraday; after the close with dbt's docs and
the report), the validation and a backfill, each in its own process as the worker would
start it (through ``deployments.flow_run``'s start, without Prefect's integrations),
with STOCKPIPE_DRAIN__MAX_RECORDS as the VM sets it. With ``--warehouse snowflake`` the run
loads into the Snowflake tier's test server (tests/snowflake/server.py, not counted) through
the saved ``stockpipe-snowflake`` connector block, as the VM's worker does
(group_vars/stockpipe_vm); the default drains into the embedded warehouse. With ``--live``
the live tier's units run too, as the stockpipe_live role starts them: ``stockpipe ingest
--follow`` on a simulated exchange speaking Finnhub's protocol (served by this process, not
counted), ``stockpipe live`` and ``stockpipe dashboard`` with one browser session open on it
(headless Chromium, not counted), all before the backlog is produced, so the live tier
follows it as it would after a restart. Prints each process's resident memory (VmRSS now,
VmHWM peak), each flow run's peak, and the steady state plus the largest run against the
machine's memory (1 GiB, or 2 GiB with ``--live``: the e2-small the live tier needs).
Grafana does not install here (apt.grafana.com cannot be reached): its line is an estimate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.monitoring import LocalMonitoring
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import load_settings
from stockpipe.streaming.topics import ensure_topics
from tests.benchmarks import run_python_measured, scratch_dir
from tests.benchmarks.bench_drain import produce_backlog
from tests.support import memory_mb, set_up_warehouse, snowflake_server_env

REPO = Path(__file__).resolve().parents[2]
KAFKA_DEFAULTS = REPO / "ansible/roles/kafka/defaults/main.yml"
GRAFANA_ESTIMATE_MB = 110  # not measured: Grafana 12 idle with one datasource, two dashboards


def wait_http(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds:.0f}s")


def wait_port(port: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"nothing listened on port {port} within {seconds:.0f}s")


def start_live_tier(settings, processes: dict[str, subprocess.Popen]):
    """The stockpipe_live role's units, with a simulated exchange for Finnhub and one
    browser session on the dashboard; returns (the exchange, the page)."""
    from playwright.sync_api import sync_playwright

    from stockpipe.live.exchange import SimulatedExchange
    from stockpipe.live.snapshot import read_snapshot, snapshot_dir
    from stockpipe.sources.simulated import SimulatedMarket

    exchange = SimulatedExchange(SimulatedMarket(listed=settings.source.watchlist)).start()
    cli = [sys.executable, "-m", "stockpipe.cli"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes["live tier (stockpipe live)"] = subprocess.Popen([*cli, "live"], **quiet)
    processes["live ingest (ingest --follow)"] = subprocess.Popen(
        [*cli, "ingest", "--follow"], env=os.environ | exchange.environment(), **quiet
    )
    processes["dashboard (stockpipe dashboard)"] = subprocess.Popen([*cli, "dashboard"], **quiet)
    deadline = time.monotonic() + 300
    while read_snapshot(snapshot_dir(settings))[0] is None:
        if time.monotonic() > deadline:
            raise SystemExit("the live tier wrote no snapshot within 300 s")
        time.sleep(0.5)
    wait_http(f"http://127.0.0.1:{settings.dashboard.port}/_stcore/health")
    browser = (
        sync_playwright()
        .start()
        .chromium.launch(
            executable_path=shutil.which("chromium") or shutil.which("chromium-browser")
        )
    )
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{settings.dashboard.port}/", timeout=120_000)
    return exchange, page


# The flow runs the VM's worker starts (prefect.yaml), each in a process of its own as
# deployments.flow_run starts it there: without Prefect's integrations. The backlog's bars
# are on 2020-01-02 (tests.support.distinct_bar_messages).
_AS_ON_THE_VM = (
    "from deployments.worker import skip_integration_imports; skip_integration_imports(); "
)
FLOW_RUNS = (
    (
        "drain (max {max_records:,} records a batch, {messages:,} messages)",
        "from flows.drain import drain_to_warehouse; drain_to_warehouse()",
    ),
    ("trends, intraday (dbt)", "from flows.trends import build_trends; build_trends()"),
    (
        "trends, after close (dbt, docs, report)",
        "from flows.trends import build_trends; build_trends(docs=True, report=True)",
    ),
    (
        "validation (Great Expectations)",
        "import datetime; from flows.validate import validate_session; "
        "validate_session(session=datetime.date(2020, 1, 2))",
    ),
    (
        "backfill (a year of daily bars of the watchlist)",
        "import datetime; from flows.backfill import backfill_history; "
        "backfill_history(first=datetime.date(2025, 1, 2), last=datetime.date(2025, 12, 31))",
    ),
)


def run_flow(work: Path, call: str) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of a flow run in a process of its own."""
    done, seconds, peak = run_python_measured(
        _AS_ON_THE_VM + call,
        stdout=subprocess.DEVNULL,
        stderr=(work / "flow.err").open("wb"),
        check=False,
    )
    return seconds, peak, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--max-records", type=int, default=5_000)
    parser.add_argument("--warehouse", choices=["embedded", "snowflake"], default="embedded")
    parser.add_argument("--live", action="store_true", help="with the live tier's units")
    parser.add_argument(
        "--symbols",
        type=int,
        default=None,
        help="symbols in the backlog, and the watchlist the flows validate and backfill "
        "(default: 500 symbols, and the default watchlist of 10)",
    )
    args = parser.parse_args()

    role = yaml.safe_load(KAFKA_DEFAULTS.read_text())
    work = scratch_dir("bench-vm-")
    ports = {
        name: free_port()
        for name in (
            "kafka",
            "controller",
            "jmx",
            "prometheus",
            "pushgateway",
            "node",
            "prefect",
            "snowflake",
            "dashboard",
        )
    }
    env = {
        **os.environ,
        "STOCKPIPE_HOME": str(work / "home"),
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": f"localhost:{ports['kafka']}",
        "STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT": str(ports["jmx"]),
        "STOCKPIPE_METRICS__PROMETHEUS_PORT": str(ports["prometheus"]),
        "STOCKPIPE_METRICS__PUSHGATEWAY_PORT": str(ports["pushgateway"]),
        "STOCKPIPE_METRICS__NODE_EXPORTER_PORT": str(ports["node"]),
        "STOCKPIPE_METRICS__PUSHGATEWAY_URL": f"127.0.0.1:{ports['pushgateway']}",
        "STOCKPIPE_DRAIN__MAX_RECORDS": str(args.max_records),
        # What 'auto' resolves to on the e2-micro's 1 GiB, not on this machine.
        "STOCKPIPE_WAREHOUSE__EMBEDDED_MEMORY_LIMIT": "96MB",
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{ports['prefect']}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "STOCKPIPE_DASHBOARD__PORT": str(ports["dashboard"]),
    }
    if args.symbols:  # the backlog's symbols (tests.support.distinct_bar_messages)
        env["STOCKPIPE_SOURCE__WATCHLIST"] = ",".join(f"SYM{i:03d}" for i in range(args.symbols))
    os.environ.update(env)
    settings = load_settings()
    processes: dict[str, subprocess.Popen] = {}
    monitoring = broker = exchange = page = None
    bin_dir = Path(sys.executable).parent
    try:
        # Kafka as the role's unit starts it: its heap and JVM options (the small-machine
        # tuning in server.properties is the role's own template, which every broker renders).
        broker = LocalBroker(
            home=work / "kafka",
            port=ports["kafka"],
            controller_port=ports["controller"],
            jmx_exporter_port=ports["jmx"],
            heap=role["kafka_heap_size"],
            jvm_options=role["kafka_jvm_options"],
            start_timeout_seconds=120,
        )
        broker.start(progress=False)
        ensure_topics(settings.kafka)

        monitoring = LocalMonitoring(settings)
        monitoring.up()

        processes["prefect server (not on the VM)"] = subprocess.Popen(
            [
                str(bin_dir / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["prefect"]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"http://127.0.0.1:{ports['prefect']}/api/health")
        # As the stockpipe-worker unit starts it (without Prefect's integrations).
        processes["prefect worker"] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deployments.worker",
                "start",
                "--pool",
                "bench-vm",
                "--type",
                "process",
                "--limit",
                "2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        if args.live:
            exchange, page = start_live_tier(settings, processes)
        print(f"producing {args.messages:,} messages ...", flush=True)
        produce_backlog(
            settings.kafka.bootstrap_servers,
            settings.kafka.prices_topic,
            args.messages,
            args.symbols or 500,
        )
        if args.warehouse == "snowflake":
            processes["snowflake test server (not on the VM)"] = subprocess.Popen(
                [sys.executable, "-m", "tests.snowflake.server", "--port", str(ports["snowflake"])],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_port(ports["snowflake"])
            os.environ.update(snowflake_server_env(ports["snowflake"]))
            # Imported here: Prefect reads PREFECT_API_URL when it is first imported.
            from deployments.blocks import SNOWFLAKE_CONNECTOR, bootstrap_blocks

            settings = load_settings()
            set_up_warehouse(settings)
            bootstrap_blocks(settings)
            # The worker's environment on the VM: the block's name, no login.
            for name in ("ACCOUNT", "USER", "PASSWORD"):
                del os.environ[f"STOCKPIPE_WAREHOUSE__{name}"]
            os.environ["STOCKPIPE_WAREHOUSE__CONNECTOR_BLOCK"] = SNOWFLAKE_CONNECTOR
        else:
            set_up_warehouse(settings)  # the admin's one-time set-up; the flow runs no DDL
        flow_runs: list[tuple[str, float, float]] = []
        for label, call in FLOW_RUNS:
            label = label.format(max_records=args.max_records, messages=args.messages)
            print(f"running the {label} flow ...", flush=True)
            seconds, peak, code = run_flow(work, call)
            if code != 0 and not label.startswith("validation"):
                tail = (work / "flow.err").read_text(errors="replace")[-3000:]
                raise SystemExit(f"the {label} flow failed (exit {code}):\n{tail}")
            outcome = "" if code == 0 else f", exit {code}"
            flow_runs.append((f"{label}, {args.warehouse} ({seconds:.0f}s{outcome})", 0.0, peak))
        time.sleep(20)  # a Prometheus scrape or two of the new series

        if page is not None:  # the session is open: its Live section follows the tier
            page.wait_for_selector("text=Live", timeout=120_000)
        rows: list[tuple[str, float, float]] = [("kafka", *memory_mb(broker.pid()))]
        for name, process in processes.items():
            rows.append((name, *memory_mb(process.pid)))
        for component in monitoring.components:
            pid_file = monitoring._pid_file(component)
            if pid_file.exists():
                rows.append((component.name, *memory_mb(int(pid_file.read_text()))))

        width = 76
        print(f"\n{'process':<{width}}{'RSS now MB':>12}{'peak MB':>10}")
        steady = 0.0
        for name, now, peak in rows:
            print(f"{name:<{width}}{now:>12.0f}{peak:>10.0f}")
            if "not on the VM" not in name:
                steady += peak
        print(
            f"{'grafana (estimate, not measured here)':<{width}}{'':>12}{GRAFANA_ESTIMATE_MB:>10}"
        )
        steady += GRAFANA_ESTIMATE_MB
        print("flow runs, one at a time (the worker's --limit 1 on the VM):")
        for name, _, peak in flow_runs:
            print(f"  {name:<{width - 2}}{'':>12}{peak:>10.0f}")
        machine = 2048 if args.live else 1024
        largest = max(flow_runs, key=lambda run: run[2])
        print(
            f"\nsum of peaks on the VM: {steady:.0f} MB steady + {largest[2]:.0f} MB for the "
            f"largest flow run ({largest[0].split(',')[0]}) = {steady + largest[2]:.0f} MB of "
            f"{machine} MB (Debian itself ~120 MB; peaks do not all coincide; 2 GB swap "
            "behind it)"
        )
    finally:
        if page is not None:
            page.context.browser.close()
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if monitoring is not None:
            monitoring.down()
        if broker is not None:
            broker.stop()
        if exchange is not None:
            exchange.stop()


if __name__ == "__main__":
    main()
