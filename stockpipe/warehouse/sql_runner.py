"""Apply the ``sql/`` directory to the warehouse, in file-name order, idempotently.

Every file holds one object (``create ... if not exists`` / ``create or replace``), so
applying the whole directory again changes nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from stockpipe.warehouse import Warehouse, WarehouseError

log = logging.getLogger(__name__)

# The sql/ directory of this checkout (the project is installed in editable mode).
DEFAULT_SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


@dataclass(frozen=True)
class SqlFile:
    path: Path
    statements: tuple[str, ...]


def _strip_comment_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def read_sql_dir(sql_dir: Path = DEFAULT_SQL_DIR) -> list[SqlFile]:
    """The files of ``sql_dir`` in order, each split into statements (``;`` at line end)."""
    if not sql_dir.is_dir():
        raise WarehouseError(f"no SQL directory at {sql_dir}")
    files = []
    for path in sorted(sql_dir.glob("*.sql")):
        body = _strip_comment_lines(path.read_text())
        statements = tuple(s.strip() for s in _STATEMENT_END.split(body) if s.strip())
        files.append(SqlFile(path, statements))
    return files


def apply_sql(warehouse: Warehouse, sql_dir: Path = DEFAULT_SQL_DIR) -> list[str]:
    """Run every statement of every file; return the file names applied.

    Raises:
        WarehouseError: naming the file whose statement failed, with the warehouse's message.
    """
    applied = []
    for sql_file in read_sql_dir(sql_dir):
        for statement in sql_file.statements:
            try:
                warehouse.execute(statement)
            except Exception as exc:
                raise WarehouseError(f"{sql_file.path.name}: {exc}") from exc
        applied.append(sql_file.path.name)
    log.info("applied %d SQL files to %s", len(applied), warehouse.location)
    return applied
