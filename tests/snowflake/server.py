"""A server speaking Snowflake's HTTP protocol for the Snowflake tier: fakesnow's, plus a
recorder and a fault switch at the HTTP boundary.

    python -m tests.snowflake.server --port 8123 --record statements.jsonl

The real snowflake-connector-python logs in and sends every statement over HTTP, as to
Snowflake. Around fakesnow's handlers this adds:

- a record of every statement with the database and role its session logged in with
  (``--record``: JSON lines ``{"session", "database", "role", "sql", "ok"}``), which the
  privilege-matrix test checks against the set-up's grants;
- statements fakesnow cannot parse and that have no data effect (the virtual warehouse, the
  resource monitor, roles, grants) answered as successes without running: they are still
  sent, recorded and checked;
- ``POST /_test/faults`` ``{"pattern", "times", "code", "sqlstate", "message"}``: the next
  ``times`` statements matching ``pattern`` fail with that Snowflake error, as a statement
  timeout or a lost lock would.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import threading
from pathlib import Path

import fakesnow.server as fakesnow_server
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Account objects with no data effect that fakesnow 0.12 cannot parse.
ACCOUNT_STATEMENTS = [
    r"^\s*create\s+warehouse\b",
    r"^\s*alter\s+warehouse\b",
    r"^\s*create\s+resource\s+monitor\b",
    r"^\s*alter\s+resource\s+monitor\b",
    r"^\s*create\s+role\b",
    r"^\s*grant\b",
]

_lock = threading.Lock()
_roles: dict[str, str | None] = {}
_databases: dict[str, str | None] = {}
_faults: list[dict] = []
_record_path: Path | None = None


def _record(entry: dict) -> None:
    if _record_path is None:
        return
    with _lock, _record_path.open("a") as out:
        out.write(json.dumps(entry) + "\n")


async def _sql_of(request: Request) -> str:
    body = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body).get("sqlText", "")


def _token(request: Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[17:-1]


async def login(request: Request) -> Response:
    response = await fakesnow_server.login_request(request)
    data = json.loads(bytes(response.body)).get("data") or {}
    if token := data.get("token"):
        _roles[token] = (request.query_params.get("roleName") or "").upper() or None
        _databases[token] = (request.query_params.get("databaseName") or "").upper() or None
    return response


async def query(request: Request) -> Response:
    sql = await _sql_of(request)
    token = _token(request)
    if use_role := re.match(r"^\s*use\s+role\s+(\w+)", sql, re.IGNORECASE):
        _roles[token] = use_role.group(1).upper()
    entry = {
        "session": token[:12],
        "database": _databases.get(token),
        "role": _roles.get(token),
        "sql": sql,
    }
    with _lock:
        fault = next((f for f in _faults if re.search(f["pattern"], sql, re.I | re.S)), None)
        if fault is not None:
            fault["times"] -= 1
            if fault["times"] <= 0:
                _faults.remove(fault)
    if fault is not None:
        _record({**entry, "ok": False, "fault": fault["code"]})
        return JSONResponse(
            {
                "data": {"errorCode": fault["code"], "sqlState": fault["sqlstate"]},
                "code": fault["code"],
                "message": fault["message"],
                "success": False,
            }
        )
    response = await fakesnow_server.query_request(request)
    ok = response.status_code == 200 and json.loads(bytes(response.body)).get("success", False)
    _record({**entry, "ok": ok})
    return response


async def faults(request: Request) -> Response:
    fault = json.loads(await request.body())
    with _lock:
        _faults.append(fault)
    return JSONResponse({"success": True})


def app() -> Starlette:
    fakesnow_server.shared_fs.nop_regexes = ACCOUNT_STATEMENTS
    handlers = {
        "/session/v1/login-request": login,
        "/queries/v1/query-request": query,
    }
    routes = [
        Route(r.path, handlers.get(r.path, r.endpoint), methods=r.methods)
        for r in fakesnow_server.routes
    ]
    routes.append(Route("/_test/faults", faults, methods=["POST"]))
    return Starlette(routes=routes)


def main() -> None:
    global _record_path
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    _record_path = args.record
    uvicorn.run(app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
