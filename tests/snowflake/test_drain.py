"""The drain on the Snowflake backend: `stockpipe drain` as LOADER, over HTTP with the real
connector, against the real broker. Dead letters, kill -9, a failed commit retried on a new
session: every valid bar exactly once afterwards."""

from __future__ import annotations

import signal

import pytest

from stockpipe.settings import Settings, load_settings
from tests.integration.test_exactly_once import Ledger, publish_with_poison, run_drain
from tests.support import SnowflakeServer

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(env_settings: Settings, snowflake_env: str) -> Settings:
    """The test's broker and topics, and a database of its own on the Snowflake server."""
    return load_settings()


def test_drain_killed_mid_run_then_resumed_loads_every_bar_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_with_poison(settings, 3_000)
    ledger = Ledger(settings)  # sets the warehouse up, as the admin would
    monkeypatch.setenv("STOCKPIPE_KAFKA__CONSUMER_INSTANCE_ID", "drain-under-test")
    for kill_at in ("raw_zone_written", "warehouse_committed@2", "dead_letters_sent@3"):
        before = ledger.check()
        killed = run_drain(STOCKPIPE_DRAIN__KILL_AT=kill_at)
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        assert ledger.check() >= before
    final = run_drain()
    assert final.returncode == 0, final.stderr
    assert ledger.check() == ledger.total  # each valid bar once, each poison pill dead-lettered


def test_a_commit_cut_short_is_retried_on_a_new_session(
    settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    publish_with_poison(settings, 1_000)
    ledger = Ledger(settings)
    # The warehouse cancels the first commit (as on a statement or lock-wait timeout).
    snowflake_server.fail_next(
        r"^\s*commit\s*$",
        times=1,
        code="000625",
        sqlstate="57014",
        message="Statement reached its statement or warehouse timeout of 60 second(s) "
        "and was canceled.",
    )
    drained = run_drain(STOCKPIPE_DRAIN__LOAD_RETRY_BASE_SECONDS="0.05")
    assert drained.returncode == 0, drained.stderr
    assert "warehouse commit failed" in drained.stderr
    assert ledger.check() == ledger.total

    loader = [
        e for e in snowflake_server.statements(snowflake_env) if e["role"] == "STOCKPIPE_LOADER"
    ]
    failed = next(i for i, e in enumerate(loader) if e.get("fault"))
    session = loader[failed]["session"]
    after = loader[failed + 1 :]
    # The failed session rolled its transaction back; the retry ran on a new session.
    assert after[0] == {**after[0], "session": session, "sql": "rollback"}
    retried = [e for e in after if e["session"] != session]
    assert retried and any(e["sql"].lower() == "commit" and e["ok"] for e in retried)
