"""Which privileges a statement needs on Snowflake, and which the set-up grants each role.

The privilege-matrix test (test_pipeline.py) runs every process against the HTTP server,
which records each statement with the role its session runs as, and checks each one here
against ``sql/900_grants.sql`` as the set-up renders it. fakesnow has no RBAC, so this is
where a missing grant shows: a statement needs (privilege, object) pairs; the role must
hold each.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

from stockpipe.settings import Settings
from stockpipe.warehouse.setup import APPLIED_TABLE, SqlFile, read_sql_dir, setup_variables

_GRANT_ON = re.compile(
    r"^grant (?P<privileges>.+?) on (?P<kind>table|stage|warehouse|database|schema) "
    r"(?P<name>\S+) to role (?P<role>\w+)$",
    re.IGNORECASE | re.DOTALL,
)
_GRANT_IN_SCHEMA = re.compile(
    r"^grant (?P<privileges>.+?) on (all|future) (?P<kind>tables|views) in schema "
    r"(?P<schema>\S+) to role (?P<role>\w+)$",
    re.IGNORECASE | re.DOTALL,
)
_CREATE = re.compile(
    r"^create (?:or replace )?(?:transient )?(?P<kind>table|view|stage) (?:if not exists )?"
    r"(?P<name>[\w.]+)",
    re.IGNORECASE,
)
_STAGE = re.compile(r"@([\w.]+)")

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


def granted(settings: Settings) -> dict[str, set[Privilege]]:
    """Role -> the (privilege, object) pairs the set-up's grants give it."""
    files = read_sql_dir(setup_variables(settings))
    objects = setup_objects(settings, files)
    roles: dict[str, set[Privilege]] = {}
    for sql_file in files:
        for statement in sql_file.statements:
            statement = " ".join(statement.split())
            if found := _GRANT_ON.match(statement):
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


def required(sql: str, database: str) -> set[Privilege] | None:
    """The privileges ``sql`` needs; None for a statement no runtime role may run (DDL)."""
    text = sql.strip()
    if re.match(r"^(begin|commit|rollback|use)\b", text, re.IGNORECASE):
        return set()
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
        _qualified(_table_name(t), database)
        for t in expression.find_all(exp.Table)
        if t.name.upper() not in ctes and (t.db or "").upper() != "INFORMATION_SCHEMA"
    }
    if isinstance(expression, exp.Select | exp.Union):
        return {("SELECT", t) for t in tables}
    verbs = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE"}
    for kind, verb in verbs.items():
        if isinstance(expression, kind):
            target = _qualified(_table_name(next(expression.this.find_all(exp.Table))), database)
            return {(verb, target)} | {("SELECT", t) for t in tables - {target}}
    return None


def _privileges(listed: str) -> list[str]:
    return [p.strip().upper() for p in listed.split(",")]


def _table_name(table: exp.Expression) -> str:
    if not isinstance(table, exp.Table):
        table = next(table.find_all(exp.Table))
    return ".".join(part for part in (table.catalog, table.db, table.name) if part)


def _qualified(name: str, database: str) -> str:
    parts = name.strip("/").split("/")[0].upper().split(".")
    if len(parts) == 1:
        parts = ["RAW", *parts]
    if len(parts) == 2:
        parts = [database.upper(), *parts]
    return ".".join(parts)
