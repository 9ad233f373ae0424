"""What a new user meets first: errors that name the fix, honest exit codes, little noise.

Each case runs the ``stockpipe`` command as a user does (a process of its own, no terminal)
and checks the message, the exit code and how much it printed. The broker cases use a port
where nothing listens, or the session's real broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stockpipe.cli import main
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import Settings

pytestmark = pytest.mark.integration

# librdkafka wrote a line per connection attempt: hundreds, and minutes, before an error.
MAX_ERROR_LINES = 5
# The connect timeout is 10 s; the old behaviour was two minutes of retries.
GIVES_UP_WITHIN_SECONDS = 60


def stockpipe(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stockpipe.cli", *args],
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def nowhere() -> dict[str, str]:
    """Settings that point the commands at a port where no broker listens (and wait 2 s for
    one rather than the default 10: the message names what the setting says)."""
    return {
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "STOCKPIPE_KAFKA__CONNECT_TIMEOUT_SECONDS": "2",
    }


def assert_names_the_broker_and_the_fix(result: subprocess.CompletedProcess, env: dict) -> None:
    servers = env["STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"]
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: cannot reach Kafka at {servers} (STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS) within "
        "2 s; start the local broker with 'stockpipe kafka up'"
    ], result.stderr
    assert "%3|" not in result.stdout + result.stderr  # no librdkafka line
    assert result.returncode == 1


@pytest.mark.parametrize(
    "command",
    [["ingest", "--session", "2025-11-26"], ["backfill", "--from", "2025-11-03"], ["drain"]],
    ids=["ingest", "backfill", "drain"],
)
def test_a_broker_nobody_runs_is_one_line_naming_address_setting_and_fix(
    env_settings: Settings, command: list[str]
) -> None:
    env = nowhere()
    if command == ["drain"]:  # the drain meets the warehouse first
        assert stockpipe("warehouse", "setup").returncode == 0
    started = time.monotonic()
    result = stockpipe(*command, env=env)
    assert time.monotonic() - started < GIVES_UP_WITHIN_SECONDS
    assert_names_the_broker_and_the_fix(result, env)


def test_a_failed_validation_with_the_broker_down_reports_both_apart(
    env_settings: Settings,
) -> None:
    """An empty session fails validation (not "14/15 passed"); the alert that cannot go out
    is reported on its own line and does not turn the result into something else."""
    assert stockpipe("warehouse", "setup").returncode == 0
    assert stockpipe("trends").returncode == 0
    env = nowhere() | {"COLUMNS": "80"}  # a pipe or a log: 80 columns
    started = time.monotonic()
    result = stockpipe("validate", "--session", "2025-11-26", env=env)
    assert time.monotonic() - started < GIVES_UP_WITHIN_SECONDS
    assert result.returncode == 1  # the data failed
    assert (
        "validation of session 2025-11-26 FAILED: no bar of this session is in RAW.STOCK_PRICES"
        in result.stdout
    )
    assert "passed" not in result.stdout.splitlines()[-2]
    # At 80 columns one outcome a line, nothing cut short.
    assert "…" not in result.stdout
    assert any(line.startswith("FAIL raw_stock_prices: ") for line in result.stdout.splitlines())
    stderr = result.stderr.strip().splitlines()
    assert len(stderr) <= MAX_ERROR_LINES, result.stderr
    assert any(
        line.startswith("alert not sent to ") and "cannot reach Kafka at " in line
        for line in stderr
    ), result.stderr


def test_validating_before_the_first_trend_build_says_to_build(env_settings: Settings) -> None:
    assert stockpipe("warehouse", "setup").returncode == 0
    result = stockpipe("validate", "--session", "2025-11-26")
    assert result.returncode == 1
    assert "the trend models are not built" in result.stderr
    assert "run 'stockpipe trends' once" in result.stderr


def test_every_contract_reject_exits_1(
    env_settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "symbol,timestamp,open,high,low,close,volume\n"
        "AAPL,2025-11-26T14:30:00Z,10,9,11,10,100\n"  # high below low
    )
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "replay")
    monkeypatch.setenv("STOCKPIPE_SOURCE__REPLAY_PATH", str(path))
    assert main(["ingest", "--session", "2025-11-26", "--symbols", "AAPL"]) == 1
    captured = capsys.readouterr()
    assert "published 0" in captured.out and "rejected 1" in captured.out
    assert "the contract rejected every bar; nothing was published" in captured.err


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_following_drain_with_what_it_committed(
    env_settings: Settings, sig: signal.Signals, code: int
) -> None:
    assert stockpipe("warehouse", "setup").returncode == 0
    assert stockpipe("ingest", "--session", "2025-11-26").returncode == 0
    drain = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "drain", "--follow", "--max-records", "500"],
        env={**os.environ, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert drain.stdout is not None
        for line in drain.stdout:  # stop it once it has committed a batch
            if line.strip().startswith("batch 1:"):
                break
        drain.send_signal(sig)
        rest, errors = drain.communicate(timeout=120)
    finally:
        drain.kill()
    assert drain.returncode == code, errors
    summary = next(line for line in rest.splitlines() if line.startswith("drained "))
    committed = int(summary.split()[1])
    assert committed >= 500  # at least the batch it was stopped after
    reason = "SIGTERM" if sig == signal.SIGTERM else "interrupted (SIGINT)"
    assert f"stopped: {reason}; what was not committed is drained next time" in summary
    assert "next offset" in rest


def test_kafka_up_prints_its_own_lines_only(tmp_path: Path) -> None:
    env = {
        "STOCKPIPE_HOME": str(tmp_path / "home"),
        "STOCKPIPE_LOCAL_KAFKA__PORT": str(port := free_port()),
        "STOCKPIPE_LOCAL_KAFKA__CONTROLLER_PORT": str(free_port()),
        "STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT": str(free_port()),
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": f"localhost:{port}",
    }
    try:
        result = stockpipe("kafka", "up", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == ""  # no librdkafka line while it waited
        assert "running: pid" in result.stdout and "topic stock_prices: created" in result.stdout
    finally:
        stockpipe("kafka", "down", env=env)


def test_a_drain_through_a_backlog_shows_its_progress_on_a_terminal(
    env_settings: Settings,
) -> None:
    import pty

    assert stockpipe("warehouse", "setup").returncode == 0
    assert stockpipe("ingest", "--session", "2025-11-26").returncode == 0
    leader, follower = pty.openpty()  # stderr is a terminal: the bar is drawn there
    drain = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "drain", "--max-records", "500"],
        env={**os.environ, "COLUMNS": "200", "TERM": "xterm-256color"},
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the drain closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    out = drain.communicate(timeout=60)[0].decode()
    assert drain.returncode == 0
    assert out.startswith("drained 3900 messages")  # the summary; no per-batch lines
    screen = drawn.decode(errors="replace")
    assert "3900/3900" in screen
    for column in ("messages", "lag 0", "msg/s", "ETA"):
        assert column in screen, screen[-500:]


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_dashboard_stopped_by_a_signal_exits_as_every_command(
    env_settings: Settings, sent: signal.Signals, code: int
) -> None:
    from stockpipe.local_stack.processes import port_in_use
    from tests.support import wait_until_serving

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stockpipe.cli", "dashboard", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_serving(process, f"http://127.0.0.1:{port}/_stcore/health", "the dashboard")
    process.send_signal(sent)
    assert process.wait(60) == code
    assert not port_in_use(port)  # its server stopped with it


@pytest.mark.parametrize(
    ("proxy", "cause"),
    [
        ("http://proxy.invalid:3128", "its host name does not resolve (DNS)"),
        ("http://127.0.0.1:{port}", "the connection was refused"),
    ],
    ids=["dns", "refused"],
)
def test_yfinance_offline_is_retried_then_one_line_naming_the_cause(
    env_settings: Settings, proxy: str, cause: str
) -> None:
    # The real yfinance, its requests sent through a proxy that cannot be reached: what an
    # offline machine sees, without asking Yahoo anything.
    env = dict(os.environ)
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env[variable] = proxy.format(port=free_port())
    env["STOCKPIPE_SOURCE__KIND"] = "yfinance"
    env["STOCKPIPE_SOURCE__MAX_RETRIES"] = "1"
    env["STOCKPIPE_SOURCE__BACKOFF_BASE_SECONDS"] = "0.01"
    done = subprocess.run(
        [sys.executable, "-m", "stockpipe.cli", "ingest", "--session", "2025-11-26"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    err = done.stderr
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot reach Yahoo Finance: {cause}"), err
    assert any("retry 1/1" in line for line in lines)  # it was tried again first
    # Nothing of yfinance's own logging or pandas' warnings on the terminal.
    assert not [line for line in lines if "yfinance" in line and "retry" not in line]
    assert "Warning" not in err


def test_a_warehouse_reload_with_the_raw_zone_off_says_why_it_loaded_nothing(
    env_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support import set_up_warehouse

    set_up_warehouse(env_settings)
    assert main(["warehouse", "reload"]) == 0
    captured = capsys.readouterr()
    assert "reloaded 0 raw-zone files" in captured.out
    assert "STOCKPIPE_LAKE__ENABLED=true, which is off" in captured.err.replace("\n", "")


def test_trends_docs_keep_dbts_lines_off_stdout(env_settings: Settings) -> None:
    import re

    assert stockpipe("warehouse", "setup").returncode == 0
    result = stockpipe("trends", "--docs")
    assert result.returncode == 0, result.stderr
    assert "dbt docs (models, tests, lineage): " in result.stdout
    # dbt's own lines start with a clock ("12:34:56  Running with dbt=..."): none here.
    assert not [line for line in result.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d", line)]
