"""Apply the ``sql/`` directory to the warehouse, in file-name order, and remember it.

Every file holds one object (``create ... if not exists`` / ``create or replace``). The
runner records each applied file's SHA-256 in ``RAW.SQL_APPLIED``; ``plan`` shows which
files are new or changed, and ``apply`` runs those (``force`` runs them all). Files whose
first line is ``-- stockpipe: snowflake-only`` (roles and grants) are skipped on the
embedded warehouse, with a message. ``{{ database }}`` in a file becomes the configured
database name, validated as a plain identifier.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stockpipe.settings import validate_identifier
from stockpipe.warehouse import Warehouse, WarehouseError

log = logging.getLogger(__name__)

# The sql/ directory of this checkout (the project is installed in editable mode).
DEFAULT_SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
SNOWFLAKE_ONLY = "-- stockpipe: snowflake-only"
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


@dataclass(frozen=True)
class SqlFile:
    path: Path
    text: str
    statements: tuple[str, ...]
    checksum: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def snowflake_only(self) -> bool:
        return self.text.lstrip().startswith(SNOWFLAKE_ONLY)


@dataclass(frozen=True)
class PlanStep:
    name: str
    action: str  # "new" | "changed" | "unchanged" | "skipped (...)"

    @property
    def runs(self) -> bool:
        return self.action in ("new", "changed")


def strip_comment_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def read_sql_dir(sql_dir: Path = DEFAULT_SQL_DIR, database: str = "STOCKS") -> list[SqlFile]:
    """The files of ``sql_dir`` in order, each split into statements (``;`` at line end)."""
    if not sql_dir.is_dir():
        raise WarehouseError(f"no SQL directory at {sql_dir}")
    database = validate_identifier(database)
    files = []
    for path in sorted(sql_dir.glob("*.sql")):
        text = path.read_text()
        body = strip_comment_lines(text).replace("{{ database }}", database)
        statements = tuple(s.strip() for s in _STATEMENT_END.split(body) if s.strip())
        checksum = hashlib.sha256(text.encode()).hexdigest()
        files.append(SqlFile(path, text, statements, checksum))
    return files


def _applied(warehouse: Warehouse) -> dict[str, str]:
    try:
        # Common SQL: a drain checks the plan on every start without loading fakesnow.
        rows = warehouse.select("select file_name, checksum from RAW.SQL_APPLIED")
    except Exception:  # the bookkeeping table does not exist before the first apply
        return {}
    return {name: checksum for name, checksum in rows}


def plan(warehouse: Warehouse, sql_dir: Path = DEFAULT_SQL_DIR) -> list[PlanStep]:
    """What ``apply`` would do, file by file."""
    applied = _applied(warehouse)
    steps = []
    for sql_file in read_sql_dir(sql_dir, warehouse.database):
        if sql_file.snowflake_only and warehouse.backend != "snowflake":
            steps.append(PlanStep(sql_file.name, "skipped (Snowflake only: roles and grants)"))
        elif sql_file.name not in applied:
            steps.append(PlanStep(sql_file.name, "new"))
        elif applied[sql_file.name] != sql_file.checksum:
            steps.append(PlanStep(sql_file.name, "changed"))
        else:
            steps.append(PlanStep(sql_file.name, "unchanged"))
    return steps


def apply_sql(
    warehouse: Warehouse, sql_dir: Path = DEFAULT_SQL_DIR, force: bool = False
) -> list[str]:
    """Run the new and changed files (all with ``force``); return the file names run.

    Raises:
        WarehouseError: naming the file whose statement failed, with the warehouse's message.
    """
    steps = {s.name: s for s in plan(warehouse, sql_dir)}
    ran = []
    for sql_file in read_sql_dir(sql_dir, warehouse.database):
        step = steps[sql_file.name]
        if step.action.startswith("skipped"):
            log.info("%s: %s", sql_file.name, step.action)
            continue
        if not (step.runs or force):
            continue
        for statement in sql_file.statements:
            try:
                warehouse.execute(statement)
            except Exception as exc:
                raise WarehouseError(f"{sql_file.name}: {exc}") from exc
        _record(warehouse, sql_file)
        ran.append(sql_file.name)
    if ran:
        log.info("applied %d SQL files to %s", len(ran), warehouse.location)
    return ran


def _record(warehouse: Warehouse, sql_file: SqlFile) -> None:
    warehouse.execute(
        "create table if not exists RAW.SQL_APPLIED "
        "(file_name varchar(255), checksum varchar(64), applied_at timestamp_ntz)"
    )
    warehouse.execute("delete from RAW.SQL_APPLIED where file_name = %s", (sql_file.name,))
    warehouse.execute(
        "insert into RAW.SQL_APPLIED (file_name, checksum, applied_at) values (%s, %s, %s)",
        (sql_file.name, sql_file.checksum, datetime.now(UTC).replace(tzinfo=None)),
    )
