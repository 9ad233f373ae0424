"""The drain on the Snowflake backend: `stockpipe drain` as LOADER, over HTTP with the real
connector, against the real broker. Dead letters, kill -9, a failed commit retried on a new
session: every valid bar exactly once afterwards."""

from __future__ import annotations

import re
import signal

import pytest

from stockpipe.settings import Settings, load_settings
from tests.support import SnowflakeServer
from tests.support.exactly_once import Ledger, publish_with_poison, run_drain

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


# Snowflake's errors for a statement that waited too long for a lock and for one that ran
# past its timeout. The SQLSTATE left out: the error number alone must make it a retry.
CANCELED = {
    "lock wait": (
        "000625",
        "Statement '01b8c2a4-0000-4c4f-0000-00012f3e5a1d' has locked table 'KAFKA_OFFSETS' "
        "in transaction 1733300000000000000 and this lock has not yet been released. Your "
        "statement '01b8c2a4-0000-4c4f-0000-00012f3e5a2b' was aborted because the number of "
        "waiters for this lock exceeds the 20 statements limit.",
    ),
    "statement timeout": (
        "000630",
        "Statement reached its statement or warehouse timeout of 1,800 second(s) and was canceled.",
    ),
}


@pytest.mark.parametrize("why", CANCELED)
def test_a_commit_cut_short_is_retried_on_a_new_session(
    settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str, why: str
) -> None:
    publish_with_poison(settings, 1_000)
    ledger = Ledger(settings)
    code, message = CANCELED[why]
    snowflake_server.fail_next(r"^\s*commit\s*$", times=1, code=code, sqlstate="", message=message)
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


def test_a_batch_whose_upload_arrived_cut_is_loaded_whole_on_the_retry(
    settings: Settings, snowflake_server: SnowflakeServer
) -> None:
    publish_with_poison(settings, 1_000)
    ledger = Ledger(settings)
    snowflake_server.lose_next_uploads("truncate")  # the COPY loads half the batch
    drained = run_drain(STOCKPIPE_DRAIN__LOAD_RETRY_BASE_SECONDS="0.05")
    assert drained.returncode == 0, drained.stderr
    assert re.search(r"IncompleteLoad: COPY .* loaded (\d+) of (?!\1)\d+ rows", drained.stderr)
    assert ledger.check() == ledger.total
