"""What a newcomer meets at the command line before anything runs: usage errors (exit 2)
that say what was wrong, settings misspelt, and tables that say why a cell is blank. No
broker, no warehouse: each is decided before either is reached. (Moved from
tests/integration/test_newcomer.py, whose env_settings fixture started the broker for
nothing.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stockpipe import market_calendar as mc
from stockpipe.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["ingest", "--session", "2025-13-01"],
            "--session 2025-13-01: not a date; expected YYYY-MM-DD",
        ),
        (
            ["validate", "--session", "12/01/2026"],
            "--session 12/01/2026: not a date; expected YYYY-MM-DD",
        ),
        (
            ["ingest", "--session", "2025-11-29"],
            "--session 2025-11-29: 2025-11-29 is not an NYSE trading day",
        ),
        (
            ["validate", "--session", "2025-11-30"],
            "--session 2025-11-30: 2025-11-30 is not an NYSE trading day",
        ),
        (
            ["backfill", "--from", "1980-01-02"],
            "--from 1980-01-02: 1980-01-02 is outside the NYSE calendar",
        ),
        (["ingest", "--symbols", "AAPL", "not a ticker"], "'not a ticker' is not a ticker"),
        (
            ["backfill", "--from", "2025-11-26", "--to", "2025-11-20"],
            "--from 2025-11-26 is after --to 2025-11-20",
        ),
        (
            ["warehouse", "setup", "--since", "2025-11-20"],
            "stockpipe warehouse setup: error: unrecognized arguments: --since",
        ),
        (["kafka", "up", "--plan"], "stockpipe kafka up: error: unrecognized arguments: --plan"),
    ],
    ids=[
        "bad-date",
        "us-date",
        "weekend",
        "weekend-validate",
        "before-calendar",
        "bad-ticker",
        "backfill-backwards",
        "other-actions-flag",
        "flag-of-no-action",
    ],
)
def test_bad_usage_exits_2_saying_what_was_wrong(
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_a_missing_replay_file_fails_at_start_naming_the_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "replay")
    monkeypatch.setenv("STOCKPIPE_SOURCE__REPLAY_PATH", str(tmp_path / "bars.csv"))
    assert main(["ingest", "--session", "2025-11-26"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert f"{tmp_path / 'bars.csv'}: no such file (STOCKPIPE_SOURCE__REPLAY_PATH)" in err


def test_a_backfill_into_the_future_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    today = datetime.now(UTC).date()
    upcoming = mc.sessions_between(today + timedelta(days=1), today + timedelta(days=10))[0]
    assert main(["backfill", "--from", "2025-11-20", "--to", str(upcoming.day)]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    closed = mc.latest_closed_session().day
    assert f"--to {upcoming.day}: history ends with the latest closed session, {closed}" in err


@pytest.mark.parametrize("command", ["ingest", "validate"])
def test_a_session_that_has_not_opened_is_refused(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    today = datetime.now(UTC).date()
    upcoming = mc.sessions_between(today + timedelta(days=1), today + timedelta(days=10))[0]
    assert main([command, "--session", str(upcoming.day)]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert f"--session {upcoming.day}: the session opens at 09:30 New York time" in err


def test_a_misspelt_key_in_dot_env_is_named_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("STOCKPIPE_SOURCE__WATCHLST=AAPL\n")  # the test's cwd
    assert main(["config"]) == 0
    err = capsys.readouterr().err.replace("\n", "")
    assert (
        f"warning: STOCKPIPE_SOURCE__WATCHLST (in {tmp_path / '.env'}) is not a setting and is "
        "ignored; did you mean STOCKPIPE_SOURCE__WATCHLIST?"
    ) in err
    assert f"home: {tmp_path / 'home'} (STOCKPIPE_HOME" in err


def test_a_misspelt_variable_is_named_with_the_nearest_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLST", "AAPL")
    assert main(["config"]) == 0
    assert (
        "warning: STOCKPIPE_SOURCE__WATCHLST is not a setting and is ignored; did you mean "
        "STOCKPIPE_SOURCE__WATCHLIST?"
    ) in capsys.readouterr().err.replace("\n", "")


def test_blank_day_changes_and_no_movers_say_why() -> None:
    import pandas as pd

    from stockpipe.cli.render import latest_table

    one_session = pd.DataFrame(
        {
            "symbol": ["AAPL"],
            "session_date": [pd.Timestamp("2025-11-26").date()],
            "bar_count": [390],
            "last_close": [101.0],
            "change_on_day_pct": [float("nan")],
            "change_vs_open_pct": [0.5],
            "ma5": [100.9],
            "ma20": [100.7],
            "session_vwap": [100.8],
        }
    )
    assert "needs the previous session's close" in str(latest_table(one_session).caption)
    assert "no bars in the warehouse yet" in str(latest_table(one_session.iloc[:0]).caption)
    assert latest_table(one_session.assign(change_on_day_pct=1.2)).caption is None
