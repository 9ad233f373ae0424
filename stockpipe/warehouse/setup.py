"""Set the warehouse up once, as an admin; check the set-up at every runtime start.

``stockpipe warehouse setup`` runs the ``sql/setup/`` directory in file-name order as the
set-up role. Every file holds one object (``create ... if not exists`` / ``create or replace``),
so running a file again changes nothing. A file's leading ``-- stockpipe:`` lines are
directives: ``snowflake-only`` marks what the embedded warehouse has no notion of (the
virtual warehouse, its resource monitor, roles and grants), skipped there; ``as {{ role }}``
runs the file as another role than the set-up role (creating roles needs USERADMIN, a
resource monitor ACCOUNTADMIN), switching back after it. ``{{ name }}`` in a file is a
setting (:func:`setup_variables`), validated as a plain identifier or an integer.

On a new Snowflake account nothing exists at login, not even the database the session
names: the account files create it, and the runner then makes it the session's database.
The runner records each applied file's SHA-256 (of the text as run) in ``RAW.SQL_APPLIED``
(created by a set-up file of its own); files applied before that table exists are recorded
as soon as it does, so a set-up stopped part-way runs the unrecorded files again, each
harmlessly, and finishes. The drain, validation and the dashboard run no DDL; the trend build
(the dbt project in ``sql/``) creates and replaces its own models in STAGING and MARTS and
nothing else. :func:`require_setup` compares that record with the files this code ships
and refuses to start, naming the set-up command, when they differ.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from stockpipe.settings import Settings, validate_identifier
from stockpipe.warehouse.base import Portable, Warehouse, WarehouseError, WarehouseNotSetUp

log = logging.getLogger(__name__)

# The project's sql/setup/, shipped as package data (stockpipe/sql links to sql/).
DEFAULT_SQL_DIR = Path(str(resources.files("stockpipe") / "sql" / "setup"))
DIRECTIVE = "-- stockpipe:"
SNOWFLAKE_ONLY = "snowflake-only"
APPLIED_TABLE = "RAW.SQL_APPLIED"
# The set-up file that creates APPLIED_TABLE: from it on, each applied file is recorded.
APPLIED_TABLE_FILE = "000_sql_applied.sql"
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_RUN_AS = re.compile(r"^as\s+(.+)$")


@dataclass(frozen=True)
class SqlFile:
    """One set-up file, rendered.

    Attributes:
        statements: its statements, in order.
        checksum: SHA-256 of the statements as run.
        snowflake_only: skipped on the embedded warehouse.
        run_as: the role it runs as, when not the set-up role.
    """

    path: Path
    statements: tuple[str, ...]
    checksum: str
    snowflake_only: bool
    run_as: str | None = None

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
        "statement_timeout_seconds": str(wh.statement_timeout_seconds),
        "user_admin_role": wh.user_admin_role,
        "account_admin_role": wh.account_admin_role,
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
        directives = _directives(text)
        snowflake_only = SNOWFLAKE_ONLY in directives
        if runtime_only and snowflake_only:
            continue
        run_as = None
        for directive in directives:
            if found := _RUN_AS.match(directive):
                run_as = validate_identifier(_render(found.group(1), variables, path))
            elif directive != SNOWFLAKE_ONLY:
                raise WarehouseError(f"{path.name}: unknown directive {DIRECTIVE} {directive}")
        body = _render(strip_comment_lines(text), variables, path)
        statements = tuple(s.strip() for s in _STATEMENT_END.split(body) if s.strip())
        checksum = hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()
        files.append(SqlFile(path, statements, checksum, snowflake_only, run_as))
    return files


def _directives(text: str) -> list[str]:
    """The ``-- stockpipe: ...`` lines at the top of a file, without the prefix."""
    found = []
    for line in text.splitlines():
        if not line.startswith(DIRECTIVE):
            break
        found.append(line[len(DIRECTIVE) :].strip())
    return found


def _applied(warehouse: Warehouse) -> dict[str, str]:
    try:
        rows = warehouse.query(Portable(f"select file_name, checksum from {APPLIED_TABLE}"))
    except Exception:  # the bookkeeping table does not exist before the first set-up
        return {}
    return {name: checksum for name, checksum in rows}


def plan(
    warehouse: Warehouse, files: list[SqlFile], applied: dict[str, str] | None = None
) -> list[PlanStep]:
    """What :func:`setup_warehouse` would do, file by file.

    Args:
        applied: the record of applied files (file name -> checksum); read when not given.
    """
    applied = _applied(warehouse) if applied is None else applied
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
    on_applied: Callable[[str], None] | None = None,
) -> list[str]:
    """Run the new and changed set-up files (all with ``force``); return the names run.

    ``warehouse`` must be a session for purpose "setup" (on Snowflake: the set-up role).

    Args:
        on_applied: called with each file's name as soon as it has run.

    Raises:
        WarehouseError: naming the file whose statement failed, with the warehouse's message.
    """
    if warehouse.purpose != "setup":
        raise WarehouseError("the set-up runs in a session for purpose 'setup' only")
    files = read_sql_dir(setup_variables(settings), sql_dir)
    applied = _applied(warehouse)
    steps = {s.name: s for s in plan(warehouse, files, applied)}
    on_snowflake = warehouse.backend == "snowflake"
    # The record exists once any file was recorded; before that, applied files wait.
    recording, unrecorded = bool(applied), []
    in_database = not on_snowflake
    ran = []
    for sql_file in files:
        step = steps[sql_file.name]
        if step.action.startswith("skipped"):
            log.info("%s: %s", sql_file.name, step.action)
            continue
        if not (step.runs or force):
            continue
        if not (sql_file.snowflake_only or in_database):
            # The account files created the database, but a session that logged in before
            # it existed has no current database: the unqualified names below need one.
            warehouse.execute(f"use database {validate_identifier(warehouse.database)}")
            in_database = True
        _run(warehouse, sql_file, settings.warehouse.setup_role)
        ran.append(sql_file.name)
        unrecorded.append(sql_file)
        recording = recording or sql_file.name == APPLIED_TABLE_FILE
        if recording:
            _record(warehouse, unrecorded)
            unrecorded = []
        if on_applied is not None:
            on_applied(sql_file.name)
    if ran:
        log.info("set up %d SQL files in %s", len(ran), warehouse.location)
    if on_snowflake:
        for user in _set_up_service_users(warehouse, settings):
            ran.append(user)
            if on_applied is not None:
                on_applied(user)
    return ran


def public_key_body(private_key_file: Path, setting: str) -> str:
    """The base64 body of the public key of ``private_key_file`` (what Snowflake's
    RSA_PUBLIC_KEY takes).

    Raises:
        WarehouseError: naming ``setting``, when the file cannot be read as an unencrypted
            RSA private key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    try:
        key = serialization.load_pem_private_key(private_key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise WarehouseError(
            f"{setting}={private_key_file}: not a readable, unencrypted PEM private key ({exc})"
        ) from exc
    if not isinstance(key, RSAPrivateKey):
        raise WarehouseError(f"{setting}={private_key_file}: Snowflake key pairs are RSA")
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


def service_user_statements(settings: Settings) -> list[tuple[str, list[str]]]:
    """For each runtime role with a service user of its own: the user's name (as the
    set-up reports it) and the statements that create it with its public key, bring its key
    up to date, and grant it its role."""
    wh = settings.warehouse
    made = []
    for runtime in wh.service_logins().values():
        login = runtime.login
        if not (login.user and login.private_key_file):
            continue
        setting = f"STOCKPIPE_WAREHOUSE__{runtime.setting.upper()}__PRIVATE_KEY_FILE"
        key = public_key_body(login.private_key_file, setting)
        user, role = validate_identifier(login.user), validate_identifier(runtime.role)
        made.append(
            (
                f"service user {user} ({role})",
                [
                    f"create user if not exists {user} type = service default_role = {role} "
                    f"default_warehouse = {validate_identifier(wh.warehouse)} "
                    f"rsa_public_key = '{key}'",
                    f"alter user {user} set rsa_public_key = '{key}'",
                    f"grant role {role} to user {user}",
                ],
            )
        )
    return made


def _set_up_service_users(warehouse: Warehouse, settings: Settings) -> list[str]:
    """Create the runtime roles' own service users as the user admin role; return what was
    set up. Run on every set-up: each statement leaves a user as it should be."""
    wh = settings.warehouse
    made = service_user_statements(settings)
    for user, statements in made:
        _run_statements(warehouse, user, statements, wh.user_admin_role, wh.setup_role)
    return [user for user, _statements in made]


def _run(warehouse: Warehouse, sql_file: SqlFile, setup_role: str) -> None:
    """The file's statements, as the role it names (then the set-up role again)."""
    _run_statements(warehouse, sql_file.name, sql_file.statements, sql_file.run_as, setup_role)


def _run_statements(
    warehouse: Warehouse,
    name: str,
    statements: Sequence[str],
    run_as: str | None,
    setup_role: str,
) -> None:
    """``statements`` in order, as ``run_as`` if given (then the set-up role again).

    Raises:
        WarehouseError: the failed statement's error, prefixed with ``name``.
    """
    if run_as:
        warehouse.execute(f"use role {validate_identifier(run_as)}")
    try:
        for statement in statements:
            try:
                warehouse.execute(statement)
            except Exception as exc:
                raise WarehouseError(f"{name}: {exc}") from exc
    finally:
        if run_as:
            warehouse.execute(f"use role {validate_identifier(setup_role)}")


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


def _record(warehouse: Warehouse, sql_files: list[SqlFile]) -> None:
    """Record ``sql_files`` as applied with their checksums (replacing older records)."""
    if not sql_files:
        return
    names = [f.name for f in sql_files]
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [(f.name, f.checksum, now) for f in sql_files]
    with warehouse.transaction():
        warehouse.execute(
            f"delete from {APPLIED_TABLE} where file_name in ({', '.join(['%s'] * len(names))})",
            names,
        )
        warehouse.execute(
            f"insert into {APPLIED_TABLE} (file_name, checksum, applied_at) values "
            + ", ".join(["(%s, %s, %s)"] * len(rows)),
            [value for row in rows for value in row],
        )
