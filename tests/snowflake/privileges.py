"""Which privileges a statement needs on Snowflake, and which the set-up grants each role.

The privilege-matrix test (test_pipeline.py) runs every process against the HTTP server,
which records each statement with the role its session runs as, and checks each one here
against ``sql/setup/900_grants.sql`` as the set-up renders it, and against what a role
owns: the transformer creates its dbt models and grants READER select on them. fakesnow
has no RBAC, so this is where a missing grant shows: a statement needs (privilege, object)
pairs; the role must hold each.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

from stockpipe.settings import Settings
from stockpipe.warehouse.setup import APPLIED_TABLE, SqlFile, read_sql_dir, setup_variables

GRANT_ON = re.compile(
    r"^grant (?P<privileges>.+?) on (?:(?P<kind>table|view|stage|warehouse|database|schema) )?"
    r"(?P<name>\S+) to (?:role )?(?P<role>\w+)$",
    re.IGNORECASE | re.DOTALL,
)
_GRANT_IN_SCHEMA = re.compile(
    r"^grant (?P<privileges>.+?) on (all|future) (?P<kind>tables|views) in schema "
    r"(?P<schema>\S+) to role (?P<role>\w+)$",
    re.IGNORECASE | re.DOTALL,
)
# What the set-up creates, and what a role may create (and then owns): dbt's models.
_CREATE = re.compile(
    r"^create (?:or replace )?(?:temporary )?(?:transient )?(?P<kind>table|view|stage) "
    r"(?:if not exists )?(?P<name>[\w.]+)",
    re.IGNORECASE,
)
_STAGE = re.compile(r"@([\w.]+)")
# DDL a role may run on what it owns (the objects it created).
_ON_OWNED = re.compile(
    r"^(?:drop (?:table|view) (?:if exists )?(?P<dropped>[\w.]+)"
    r"|alter (?:table|view) (?P<altered>[\w.]+)"
    r"|grant \w+ on (?:(?:table|view) )?(?P<granted>[\w.]+) to (?:role )?\w+)",
    re.IGNORECASE,
)
# Metadata: what a role's USAGE on the database and schemas lets it list and describe.
_METADATA = re.compile(r"^(show|describe|desc|alter session)\b", re.IGNORECASE)

Privilege = tuple[str, str]  # (privilege, fully qualified object name)


def setup_objects(settings: Settings, files: list[SqlFile]) -> dict[str, str]:
    """Every table, view and stage the set-up ``files`` create: qualified name -> kind."""
    database = settings.warehouse.database
    objects = {f"{database}.{APPLIED_TABLE}": "table"}
    for sql_file in files:
        for statement in sql_file.statements:
            if found := _CREATE.match(statement):
                objects[_qualified(found["name"], database)] = found["kind"].lower()
    return objects


def set_up_objects(settings: Settings) -> dict[str, str]:
    """What the set-up creates (no runtime role may own or replace it)."""
    return setup_objects(settings, read_sql_dir(setup_variables(settings)))


def granted_at_run_time(statements: list[dict]) -> dict[str, set[Privilege]]:
    """Role -> (SELECT, object) pairs granted by the roles that own the objects (dbt's
    grants config) in the recorded ``statements`` that succeeded."""
    roles: dict[str, set[Privilege]] = {}
    for entry in statements:
        text = plain_sql(entry["sql"]).rstrip("; ")
        if entry.get("ok") and (found := GRANT_ON.match(text)):
            held = roles.setdefault(found["role"].upper(), set())
            for privilege in _privileges(found["privileges"]):
                held.add((privilege, found["name"].upper()))
    return roles


def granted(settings: Settings) -> dict[str, set[Privilege]]:
    """Role -> the (privilege, object) pairs the set-up's grants give it."""
    files = read_sql_dir(setup_variables(settings))
    objects = setup_objects(settings, files)
    roles: dict[str, set[Privilege]] = {}
    for sql_file in files:
        for statement in sql_file.statements:
            statement = " ".join(statement.split())
            if found := GRANT_ON.match(statement):
                held = roles.setdefault(found["role"].upper(), set())
                for privilege in _privileges(found["privileges"]):
                    held.add((privilege, found["name"].upper()))
            elif found := _GRANT_IN_SCHEMA.match(statement):
                held = roles.setdefault(found["role"].upper(), set())
                kind = found["kind"].lower().rstrip("s")
                schema = found["schema"].upper()
                for name, object_kind in objects.items():
                    if object_kind == kind and name.rsplit(".", 1)[0] == schema:
                        held |= {(p, name) for p in _privileges(found["privileges"])}
    return roles


def required(
    sql: str, database: str, owned: set[str] | None = None, schema: str = "RAW"
) -> set[Privilege] | None:
    """The privileges ``sql`` needs; None for a statement the role may not run at all (DDL
    on an object it does not own).

    Args:
        owned: objects the role created (a role owns what it creates), which it may
            replace, drop, alter, read, write and grant on; grows with each CREATE.
        schema: the session's current schema, where an unqualified name lives.
    """
    owned = owned if owned is not None else set()
    text = plain_sql(sql)
    if re.match(r"^(begin|commit|rollback|use)\b", text, re.IGNORECASE) or _METADATA.match(text):
        return set()
    if found := _CREATE.match(text):
        name = _qualified(found["name"], database, schema)
        create = sqlglot.parse_one(text.rstrip("; "), read="snowflake")
        query = create.expression if isinstance(create, exp.Create) else None
        if isinstance(query, exp.Subquery):
            query = query.unnest()
        reads = required(query.sql("snowflake"), database, owned, schema) if query else set()
        privilege = f"CREATE {found['kind'].upper()}"
        needs = set() if name in owned else {(privilege, name.rsplit(".", 1)[0])}
        owned.add(name)
        return None if reads is None else needs | reads
    if found := _ON_OWNED.match(text):
        name = _qualified(next(n for n in found.groups() if n), database, schema)
        # Not created in this run (a temporary table of an earlier one, say): the role must
        # own it, which it can only for what it may create there.
        return set() if name in owned else {("OWNERSHIP", name)}
    if re.match(r"^put\b", text, re.IGNORECASE):
        return {("WRITE", _qualified(s, database)) for s in _STAGE.findall(text)}
    expression = sqlglot.parse_one(text.replace("%s", "?"), read="snowflake")
    if isinstance(expression, exp.Copy):
        target = _qualified(_table_name(expression.this), database)
        stages = {_qualified(s, database) for s in _STAGE.findall(text)}
        # PURGE removes the loaded files: it needs WRITE as well as READ.
        return {("INSERT", target)} | {(p, s) for s in stages for p in ("READ", "WRITE")}
    ctes = {cte.alias_or_name.upper() for cte in expression.find_all(exp.CTE)}
    tables = {
        _qualified(_table_name(t), database, schema)
        for t in expression.find_all(exp.Table)
        if t.name.upper() not in ctes and (t.db or "").upper() != "INFORMATION_SCHEMA"
    }
    if isinstance(expression, exp.Select | exp.Union):
        return {("SELECT", t) for t in tables - owned}
    verbs = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE"}
    for kind, verb in verbs.items():
        if isinstance(expression, kind):
            target = _qualified(
                _table_name(next(expression.this.find_all(exp.Table))), database, schema
            )
            needs = {(verb, target)} | {("SELECT", t) for t in tables - {target}}
            return {need for need in needs if need[1] not in owned}
    return None


# A string literal (kept: a value such as a Kafka cluster id may hold "--"), or a comment.
_LITERAL_OR_COMMENT = re.compile(r"'(?:[^'\\]|\\.|'')*'|--[^\n]*|/\*.*?\*/", re.DOTALL)


def plain_sql(sql: str) -> str:
    """``sql`` on one line, without comments (dbt appends one to every statement)."""
    without_comments = _LITERAL_OR_COMMENT.sub(
        lambda found: found[0] if found[0].startswith("'") else " ", sql
    )
    return " ".join(without_comments.split())


def _privileges(listed: str) -> list[str]:
    return [p.strip().upper() for p in listed.split(",")]


def _table_name(table: exp.Expression) -> str:
    if not isinstance(table, exp.Table):
        table = next(table.find_all(exp.Table))
    return ".".join(part for part in (table.catalog, table.db, table.name) if part)


def _qualified(name: str, database: str, schema: str = "RAW") -> str:
    parts = name.strip("/").split("/")[0].upper().split(".")
    if len(parts) == 1:
        parts = [schema, *parts]
    if len(parts) == 2:
        parts = [database.upper(), *parts]
    return ".".join(parts)
