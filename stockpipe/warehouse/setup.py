"""Set the warehouse up once, as an admin; check the set-up at every runtime start.

``stockpipe warehouse setup`` runs the ``sql/setup/`` directory in file-name order as the
set-up role. Every file holds one object (``create ... if not exists`` / ``create or replace``).
Files whose first line is ``-- stockpipe: snowflake-only`` hold what the embedded warehouse
has no notion of (the virtual warehouse, its resource monitor, roles and grants) and are
skipped there. ``{{ name }}`` in a file is a setting (:func:`setup_variables`), validated
as a plain identifier or an integer.

The runner records each applied file's SHA-256 (of the text as run) in
``RAW.SQL_APPLIED``. The drain, validation and the dashboard run no DDL; the trend build
(the dbt project in ``sql/``) creates and replaces its own models in STAGING and MARTS and
nothing else. :func:`require_setup` compares that record with the files this code ships
and refuses to start, naming the set-up command, when they differ.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from stockpipe.settings import Settings, validate_identifier
from stockpipe.warehouse.base import Portable, Warehouse, WarehouseError, WarehouseNotSetUp

log = logging.getLogger(__name__)

# The project's sql/setup/, shipped as package data (stockpipe/sql links to sql/).
DEFAULT_SQL_DIR = Path(str(resources.files("stockpipe") / "sql" / "setup"))
SNOWFLAKE_ONLY = "-- stockpipe: snowflake-only"
APPLIED_TABLE = "RAW.SQL_APPLIED"
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class SqlFile:
    path: Path
    statements: tuple[str, ...]
    checksum: str
    snowflake_only: bool

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class PlanStep:
    name: str
    action: str  # "new" | "changed" | "unchanged" | "skipped (...)"

    @property
    def runs(self) -> bool:
        return self.action in ("new", "changed")


def strip_comment_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def setup_variables(settings: Settings) -> dict[str, str]:
    """The values of ``{{ name }}`` placeholders in the set-up SQL."""
    wh = settings.warehouse
    return {
        "database": wh.database,
        "warehouse": wh.warehouse,
        "resource_monitor": f"{wh.warehouse}_MONITOR",
        "monthly_credit_quota": str(wh.monthly_credit_quota),
        "auto_suspend_seconds": str(wh.auto_suspend_seconds),
        "loader_role": wh.loader_role,
        "transformer_role": wh.transformer_role,
        "reader_role": wh.reader_role,
    }


def _render(text: str, variables: dict[str, str], where: Path) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise WarehouseError(f"{where.name}: unknown placeholder {{{{ {name} }}}}")
        found = variables[name]
        return found if found.isdigit() else validate_identifier(found)

    return _PLACEHOLDER.sub(value, text)


def read_sql_dir(
    variables: dict[str, str], sql_dir: Path = DEFAULT_SQL_DIR, *, runtime_only: bool = False
) -> list[SqlFile]:
    """The files of ``sql_dir`` in order, rendered and split into statements (``;`` at line
    end). ``runtime_only`` leaves out the Snowflake-only files (account objects, grants)."""
    if not sql_dir.is_dir():
        raise WarehouseError(f"no SQL directory at {sql_dir}")
    files = []
    for path in sorted(sql_dir.glob("*.sql")):
        text = path.read_text()
        snowflake_only = text.lstrip().startswith(SNOWFLAKE_ONLY)
        if runtime_only and snowflake_only:
            continue
        body = _render(strip_comment_lines(text), variables, path)
        statements = tuple(s.strip() for s in _STATEMENT_END.split(body) if s.strip())
        checksum = hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()
        files.append(SqlFile(path, statements, checksum, snowflake_only))
    return files


def _applied(warehouse: Warehouse) -> dict[str, str]:
    try:
        rows = warehouse.query(Portable(f"select file_name, checksum from {APPLIED_TABLE}"))
    except Exception:  # the bookkeeping table does not exist before the first set-up
        return {}
    return {name: checksum for name, checksum in rows}


def plan(warehouse: Warehouse, files: list[SqlFile]) -> list[PlanStep]:
    """What :func:`apply` would do, file by file."""
    applied = _applied(warehouse)
    steps = []
    for sql_file in files:
        if sql_file.snowflake_only and warehouse.backend != "snowflake":
            steps.append(
                PlanStep(sql_file.name, "skipped (Snowflake only: warehouse, roles, grants)")
            )
        elif sql_file.name not in applied:
            steps.append(PlanStep(sql_file.name, "new"))
        elif applied[sql_file.name] != sql_file.checksum:
            steps.append(PlanStep(sql_file.name, "changed"))
        else:
            steps.append(PlanStep(sql_file.name, "unchanged"))
    return steps


def setup_warehouse(
    warehouse: Warehouse,
    settings: Settings,
    sql_dir: Path = DEFAULT_SQL_DIR,
    force: bool = False,
) -> list[str]:
    """Run the new and changed set-up files (all with ``force``); return the names run.

    ``warehouse`` must be a session for purpose "setup" (on Snowflake: the set-up role).

    Raises:
        WarehouseError: naming the file whose statement failed, with the warehouse's message.
    """
    if warehouse.purpose != "setup":
        raise WarehouseError("the set-up runs in a session for purpose 'setup' only")
    files = read_sql_dir(setup_variables(settings), sql_dir)
    steps = {s.name: s for s in plan(warehouse, files)}
    ran = []
    for sql_file in files:
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
        log.info("set up %d SQL files in %s", len(ran), warehouse.location)
    return ran


def require_setup(warehouse: Warehouse, sql_dir: Path = DEFAULT_SQL_DIR) -> None:
    """Refuse to go on unless the warehouse holds what this code's ``sql/`` defines.

    Raises:
        WarehouseNotSetUp: which files are missing or differ, and the command that fixes it.
    """
    files = read_sql_dir({"database": warehouse.database}, sql_dir, runtime_only=True)
    pending = [s for s in plan(warehouse, files) if s.runs]
    if not pending:
        return
    listed = ", ".join(f"{s.name} ({s.action})" for s in pending[:5])
    more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
    raise WarehouseNotSetUp(
        f"the warehouse {warehouse.location} is not set up for this version of stockpipe: "
        f"{listed}{more}. Run `stockpipe warehouse setup` once (on Snowflake as the set-up "
        "role, STOCKPIPE_WAREHOUSE__SETUP_ROLE); the runtime roles may not change it."
    )


def _record(warehouse: Warehouse, sql_file: SqlFile) -> None:
    warehouse.execute(
        f"create table if not exists {APPLIED_TABLE} "
        "(file_name varchar(255), checksum varchar(64), applied_at timestamp_ntz)"
    )
    warehouse.execute(f"delete from {APPLIED_TABLE} where file_name = %s", (sql_file.name,))
    warehouse.execute(
        f"insert into {APPLIED_TABLE} (file_name, checksum, applied_at) values (%s, %s, %s)",
        (sql_file.name, sql_file.checksum, datetime.now(UTC).replace(tzinfo=None)),
    )
