"""The dbt project's SQL passes sqlfluff (Snowflake dialect, sql/.sqlfluff)."""

from __future__ import annotations

from pathlib import Path

import sqlfluff.core

PROJECT = Path(__file__).resolve().parents[2] / "sql"


def test_every_model_passes_sqlfluff() -> None:
    linter = sqlfluff.core.Linter(config=sqlfluff.core.FluffConfig.from_path(str(PROJECT)))
    result = linter.lint_paths((str(PROJECT / "models"),))
    models = list((PROJECT / "models").rglob("*.sql"))
    records = result.as_records()
    assert len(records) == len(models) >= 10
    problems = [
        f"{Path(r['filepath']).name}:{v['start_line_no']} {v['code']} {v['description']}"
        for r in records
        for v in r["violations"]
    ]
    assert not problems, "\n".join(problems)
