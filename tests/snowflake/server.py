"""A server speaking Snowflake's HTTP protocol for the Snowflake tier: fakesnow's, plus a
recorder and a fault switch at the HTTP boundary.

    python -m tests.snowflake.server --port 8123 --record statements.jsonl

The real snowflake-connector-python logs in and sends every statement over HTTP, as to
Snowflake. The account starts empty, as a new Snowflake account does: a login names a
database and schema that do not exist until the client creates them (fakesnow would
otherwise create them at login). Around fakesnow's handlers this adds:

- a record of every statement with the database and role its session logged in with
  (``--record``: JSON lines ``{"session", "database", "role", "sql", "ok"}``), which the
  privilege-matrix test checks against the set-up's grants;
- statements fakesnow cannot parse and that have no data effect (the virtual warehouse, the
  resource monitor, roles, grants) answered as successes without running: they are still
  sent, recorded and checked;
- Snowflake's transaction rules where fakesnow is kinder: DDL inside an explicit
  transaction first commits it (fakesnow does this only for sessions without autocommit),
  and a session that logs out with a transaction open has it rolled back;
- Snowflake's locks where fakesnow (DuckDB) fails instead: a transaction's first UPDATE,
  DELETE or MERGE of a table takes the table's lock until it commits or rolls back, and
  another session's UPDATE, DELETE or MERGE of that table waits for it (up to the session's
  ``LOCK_TIMEOUT``, then fails as Snowflake does) and then reads what was committed, as
  under Snowflake's READ COMMITTED (DuckDB would fail the write as a conflict with a
  transaction that committed after the waiter's began; the server answers that with HTTP
  500, which the connector retries for ever). A waiter that had written nothing yet in its
  transaction has it begun again after the wait, which is what READ COMMITTED sees;
- ``REMOVE @stage/path``, which fakesnow cannot parse, removing the files under that path;
- object grants kept as Snowflake keeps them (fakesnow has no roles): ``GRANT ... ON
  TABLE|VIEW`` adds, ``SHOW GRANTS ON`` lists (as dbt reads them), and ``CREATE OR REPLACE``
  without ``COPY GRANTS`` or ``DROP`` loses the object's grants;
- each session's ``QUERY_TAG`` and authenticator as it logged in, in the record;
- users as Snowflake keeps them: ``CREATE USER ... RSA_PUBLIC_KEY = '...'`` (and ``ALTER
  USER ... SET RSA_PUBLIC_KEY``) registers the user's key, ``GRANT ROLE ... TO USER`` its
  roles, and such a user logs in only as a role granted to it (Snowflake's error 390189
  otherwise); each session's user is in the record;
- key-pair logins checked as Snowflake checks them (fakesnow accepts any login): a JWT
  login (``SNOWFLAKE_JWT``) succeeds only with a token signed by the private key of a
  public key registered for its user (``POST /_test/rsa_public_key`` ``{"user", "key"}``,
  as ``ALTER USER ... SET RSA_PUBLIC_KEY``) and naming that user; otherwise Snowflake's
  error 390144 (JWT token is invalid);
- ``POST /_test/faults`` ``{"pattern", "times", "code", "sqlstate", "message"}``: the next
  ``times`` statements matching ``pattern`` fail with that Snowflake error, as a statement
  timeout or a lost lock would;
- ``POST /_test/upload_faults`` ``{"action", "times"}``: the next ``times`` files PUT on a
  stage are lost (``drop``: the upload is answered but nothing is stored) or arrive cut
  (``truncate``: a Parquet file keeps its first half of rows), as a failed or partial upload
  would leave them for the COPY after it.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import threading
from pathlib import Path

import fakesnow.server as fakesnow_server
import pyarrow as pa
import pyarrow.parquet as pq
import uvicorn
from fakesnow.instance import FakeSnow
from fakesnow.transforms import stage as fakesnow_stage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.snowflake.privileges import GRANT_ON, plain_sql

# Account objects with no data effect that fakesnow 0.12 cannot parse.
ACCOUNT_STATEMENTS = [
    r"^\s*create\s+warehouse\b",
    r"^\s*alter\s+warehouse\b",
    r"^\s*create\s+resource\s+monitor\b",
    r"^\s*alter\s+resource\s+monitor\b",
    r"^\s*create\s+role\b",
    r"^\s*grant\b",
    r"^\s*create\s+user\b",
    r"^\s*alter\s+user\b",
]
_CREATE_USER = re.compile(
    r"^\s*create\s+user\s+(?:if\s+not\s+exists\s+)?(?P<user>\w+)\b(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_ALTER_USER_KEY = re.compile(
    r"^\s*alter\s+user\s+(?P<user>\w+)\s+set\s+(?P<rest>rsa_public_key\s*=.*)$",
    re.IGNORECASE | re.DOTALL,
)
_RSA_PUBLIC_KEY = re.compile(r"\brsa_public_key\s*=\s*'(?P<key>[A-Za-z0-9+/=\s]+)'", re.IGNORECASE)
_GRANT_ROLE_TO_USER = re.compile(
    r"^\s*grant\s+role\s+(?P<role>\w+)\s+to\s+user\s+(?P<user>\w+)\s*$", re.IGNORECASE
)

# Statements after which Snowflake commits an open transaction: DDL commits it first.
_DDL = re.compile(r"^\s*(create|alter|drop|grant|revoke|truncate|undrop)\b", re.IGNORECASE)
_REMOVE = re.compile(r"^\s*(?:remove|rm)\s+@([\w.$]+)(/\S*)?\s*$", re.IGNORECASE)
_SHOW_GRANTS = re.compile(
    r"^\s*show\s+grants\s+on\s+(?:table\s+|view\s+)?(?P<name>[\w.\"]+)\s*$", re.IGNORECASE
)
_REPLACED = re.compile(
    r"^\s*(?:create\s+or\s+replace|drop)\s+(?:transient\s+|temporary\s+)?(?:table|view)\s+"
    r"(?:if\s+exists\s+)?(?P<name>[\w.\"]+)(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)

# The statements that take a table's lock, and the table they name.
_WRITES = {"insert", "update", "delete", "merge", "copy"}
_LOCKING = re.compile(
    r"^\s*(?:update|delete\s+from|merge\s+into)\s+(?P<table>[\w.\"]+)", re.IGNORECASE
)

_lock = threading.Lock()
# Snowflake's table locks: "DATABASE.TABLE" -> its lock; a session's locks held; the sessions
# whose open transaction has written (it cannot be begun again after a wait).
_table_locks: dict[str, asyncio.Lock] = {}
_locks_held: dict[str, set[str]] = {}
_lock_timeouts: dict[str, float] = {}
_wrote: set[str] = set()
_roles: dict[str, str | None] = {}
_databases: dict[str, str | None] = {}
_query_tags: dict[str, str | None] = {}
_authenticators: dict[str, str] = {}
_users: dict[str, str] = {}  # session -> the user it logged in as
_rsa_public_keys: dict[str, bytes] = {}  # user (upper case) -> PEM
# Users made by CREATE USER (upper case) -> the roles granted to them: such a user may log
# in only as one of them, as on Snowflake.
_user_roles: dict[str, set[str]] = {}
_in_transaction: set[str] = set()
_faults: list[dict] = []
_upload_faults: list[dict] = []
# Object (database.schema.name, upper case) -> (privilege, role) granted on it.
_grants: dict[str, set[tuple[str, str]]] = {}
_record_path: Path | None = None


def _record(entry: dict) -> None:
    if _record_path is None:
        return
    with _lock, _record_path.open("a") as out:
        out.write(json.dumps(entry) + "\n")


def _token(request: Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[17:-1]


async def _json_body(request: Request) -> dict:
    body = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)


def _replace_sql(request: Request, body: dict, sql: str) -> None:
    """Make fakesnow's handler read ``sql`` as the request's statement."""
    data = json.dumps({**body, "sqlText": sql}).encode()
    if request.headers.get("Content-Encoding") == "gzip":
        data = gzip.compress(data)
    request._body = data  # Starlette reads the body once and keeps it here


def _jwt_refusal(data: dict) -> str | None:
    """Why Snowflake would refuse this key-pair login (None: it would accept it)."""
    import jwt

    user = str(data.get("LOGIN_NAME", "")).upper()
    key = _rsa_public_keys.get(user)
    if key is None:
        return f"no RSA public key is set for user {user}"
    try:
        claims = jwt.decode(data.get("TOKEN", ""), key, algorithms=["RS256"])
    except jwt.PyJWTError as exc:
        return f"the token's signature does not verify ({exc})"
    if str(claims.get("sub", "")).upper().rsplit(".", 1)[-1] != user:
        return f"the token is for {claims.get('sub')}, not {user}"
    return None


def _track_users(sql: str) -> None:
    """Users, their public keys and their roles, as CREATE USER, ALTER USER ... SET
    RSA_PUBLIC_KEY and GRANT ROLE ... TO USER leave them."""
    sql = plain_sql(sql).rstrip("; ")
    with _lock:
        if made := _CREATE_USER.match(sql):
            user = made["user"].upper()
            if user in _user_roles:  # IF NOT EXISTS: an existing user is left as it is
                return
            _user_roles[user] = set()
            changed = made
        elif altered := _ALTER_USER_KEY.match(sql):
            user, changed = altered["user"].upper(), altered
        elif granted := _GRANT_ROLE_TO_USER.match(sql):
            _user_roles.setdefault(granted["user"].upper(), set()).add(granted["role"].upper())
            return
        else:
            return
        if key := _RSA_PUBLIC_KEY.search(changed["rest"]):
            body = re.sub(r"\s+", "", key["key"])
            lines = [body[i : i + 64] for i in range(0, len(body), 64)]
            pem = "\n".join(["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----"])
            _rsa_public_keys[user] = (pem + "\n").encode()


async def login(request: Request) -> Response:
    data = (await _json_body(request))["data"]
    parameters = data.get("SESSION_PARAMETERS") or {}
    authenticator = str(data.get("AUTHENTICATOR") or "SNOWFLAKE").upper()
    user = str(data.get("LOGIN_NAME", "")).upper()
    role = (request.query_params.get("roleName") or "").upper()
    if user in _user_roles and role and role not in _user_roles[user]:
        return JSONResponse(
            {
                "data": None,
                "code": "390189",
                "success": False,
                "message": f"Role '{role}' specified in the connect string is not granted "
                "to this user. Contact your local system administrator, or attempt to login "
                "with another role, e.g. PUBLIC.",
            }
        )
    if authenticator == "SNOWFLAKE_JWT" and (refusal := _jwt_refusal(data)) is not None:
        return JSONResponse(
            {
                "data": None,
                "code": "390144",
                "success": False,
                "message": f"JWT token is invalid: {refusal}",
            }
        )
    response = await fakesnow_server.login_request(request)
    answer = json.loads(bytes(response.body))
    data = answer.get("data") or {}
    if token := data.get("token"):
        _roles[token] = (request.query_params.get("roleName") or "").upper() or None
        _databases[token] = (request.query_params.get("databaseName") or "").upper() or None
        _query_tags[token] = parameters.get("QUERY_TAG")
        _authenticators[token] = authenticator
        _users[token] = user
        _lock_timeouts[token] = float(parameters.get("LOCK_TIMEOUT") or 43_200)
        # Without a master token the connector never logs out (its close() gives up before
        # the request), so a closed session's transaction would stay open for ever.
        data["masterToken"] = f"master-{token}"
        return JSONResponse(answer)
    return response


async def session(request: Request) -> Response:
    """Log-out: Snowflake rolls back the transaction a closed session left open."""
    token = _token(request)
    if request.query_params.get("delete"):
        _in_transaction.discard(token)
        if (conn := fakesnow_server.sessions.get(token)) is not None:
            conn.cursor().execute("rollback")  # nothing happens without a transaction
        _release_locks(token)
    return await fakesnow_server.session(request)


def _object(token: str, name: str) -> str:
    """``name`` qualified with the session's database and schema, upper case."""
    parts = name.replace('"', "").upper().split(".")
    conn = fakesnow_server.sessions[token]
    context = [(conn.database or "").upper(), (conn.schema or "").upper()]
    return ".".join([*context[: 3 - len(parts)], *parts])


def _track_grants(token: str, sql: str) -> str | None:
    """Keep the grants a statement changes; for SHOW GRANTS, the SQL that lists them."""
    sql = plain_sql(sql).rstrip("; ")
    if granted := GRANT_ON.match(sql):
        held = _grants.setdefault(_object(token, granted["name"]), set())
        for privilege in granted["privileges"].split(","):
            held.add((privilege.strip().upper(), granted["role"].upper()))
    elif replaced := _REPLACED.match(sql):
        if not re.match(r"\s*copy\s+grants\b", replaced["rest"], re.IGNORECASE):
            _grants.pop(_object(token, replaced["name"]), None)
    elif shown := _SHOW_GRANTS.match(sql):
        name = _object(token, shown["name"])
        # SHOW's columns are lower case; fakesnow upper-cases unquoted aliases.
        columns = ("created_on", "privilege", "granted_on", "name", "granted_to")
        columns += ("grantee_name", "grant_option", "granted_by")
        rows = [
            (
                f"'{privilege}'",
                "'TABLE'",
                f"'{name}'",
                "'ROLE'",
                f"'{role}'",
                "'false'",
                "'SYSADMIN'",
            )
            for privilege, role in sorted(_grants.get(name, ()))
        ]
        selects = [
            "select "
            + ", ".join(
                f'{v} as "{c}"' for v, c in zip(("current_timestamp()", *row), columns, strict=True)
            )
            for row in rows
        ] or ["select " + ", ".join(f'null as "{c}"' for c in columns) + " where false"]
        return " union all ".join(selects)
    return None


def _remove(token: str, stage_name: str, path: str) -> list[str]:
    """REMOVE @stage/path: delete the stage's files under ``path``; the names removed."""
    conn = fakesnow_server.sessions[token]
    catalog, schema, name = fakesnow_stage.parts_from_var(stage_name, conn.database, conn.schema)
    root = Path(fakesnow_stage.internal_dir(f"{catalog}.{schema}.{name}"))
    target = Path(fakesnow_stage.internal_dir(f"{catalog}.{schema}.{name}", path.lstrip("/")))
    removed = []
    if target.is_dir():
        for found in sorted(target.rglob("*")):
            if found.is_file():
                removed.append(f"{name.lower()}/{found.relative_to(root)}")
                found.unlink()
    elif target.is_file():
        removed.append(f"{name.lower()}/{target.relative_to(root)}")
        target.unlink()
    return removed


def _error(code: str, sqlstate: str, message: str) -> JSONResponse:
    """A statement's failure as Snowflake answers it (the connector raises it as such)."""
    return JSONResponse(
        {
            "data": {"errorCode": code, "sqlState": sqlstate},
            "code": code,
            "message": message,
            "success": False,
        }
    )


def _release_locks(token: str) -> None:
    """The end of a session's transaction: its table locks go, waiters proceed."""
    _wrote.discard(token)
    for table in _locks_held.pop(token, set()):
        _table_locks[table].release()


async def _wait_for_lock(token: str, sql: str, entry: dict) -> Response | None:
    """Take (in a transaction: keep) the lock of the table ``sql`` writes, waiting for the
    session that holds it (recorded as ``entry`` with the table); None when taken, or
    Snowflake's error after LOCK_TIMEOUT."""
    locking = _LOCKING.match(plain_sql(sql))
    if locking is None:
        return None
    parts = locking.group("table").replace('"', "").upper().split(".")
    table = parts[-1]
    # A table of each database has a lock of its own (tests share the server, not databases).
    locked = f"{parts[0] if len(parts) == 3 else _databases.get(token)}.{table}"
    held = _locks_held.setdefault(token, set())
    if locked in held:
        return None
    lock = _table_locks.setdefault(locked, asyncio.Lock())
    waited = lock.locked()
    if waited:  # for a race test to see
        _record({**entry, "waiting_for_lock": table})
    try:
        await asyncio.wait_for(lock.acquire(), timeout=_lock_timeouts.get(token, 43_200))
    except TimeoutError:
        return _error(
            "000625", "57014", f"Statement waited more than LOCK_TIMEOUT for the lock on {table}"
        )
    if token in _in_transaction:
        held.add(locked)
        conn = fakesnow_server.sessions.get(token)
        if waited and token not in _wrote and conn is not None:
            # READ COMMITTED: the statement sees what the holder committed meanwhile.
            conn.cursor().execute("rollback")
            conn.cursor().execute("begin transaction")
    else:
        lock.release()  # an autocommit statement waits, then holds nothing
    return None


async def query(request: Request) -> Response:
    body = await _json_body(request)
    sql = body.get("sqlText", "")
    token = _token(request)
    if use_role := re.match(r"^\s*use\s+role\s+(\w+)", sql, re.IGNORECASE):
        _roles[token] = use_role.group(1).upper()
    if use_database := re.match(r"^\s*use\s+database\s+(\w+)", sql, re.IGNORECASE):
        _databases[token] = use_database.group(1).upper()
    entry = {
        "session": token[:12],
        "database": _databases.get(token),
        "role": _roles.get(token),
        "query_tag": _query_tags.get(token),
        "authenticator": _authenticators.get(token),
        "user": _users.get(token),
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
        return _error(fault["code"], fault["sqlstate"], fault["message"])
    keyword = plain_sql(sql).lower().rstrip(";")
    release_after = False
    if keyword in ("begin", "begin transaction", "start transaction"):
        _in_transaction.add(token)
    elif keyword in ("commit", "rollback"):
        _in_transaction.discard(token)
        release_after = True
    elif token in _in_transaction and _DDL.match(plain_sql(sql)):
        _in_transaction.discard(token)
        if (conn := fakesnow_server.sessions.get(token)) is not None:
            conn.cursor().execute("commit")
        _release_locks(token)
    elif (refused := await _wait_for_lock(token, sql, entry)) is not None:
        _record({**entry, "ok": False, "fault": "000625"})
        return refused
    _track_users(sql)
    if (listing := _track_grants(token, sql)) is not None:
        _replace_sql(request, body, listing)
    if removing := _REMOVE.match(plain_sql(sql)):
        removed = _remove(token, removing.group(1), removing.group(2) or "")
        rows = " union all ".join(f"select '{n}' as name, 'removed' as result" for n in removed)
        _replace_sql(request, body, rows or "select null as name, null as result where false")
    response = await fakesnow_server.query_request(request)
    ok = response.status_code == 200 and json.loads(bytes(response.body)).get("success", False)
    _record({**entry, "ok": ok})
    if release_after:
        _release_locks(token)
    elif ok and token in _in_transaction and keyword.split(" ", 1)[0] in _WRITES:
        _wrote.add(token)
    return response


async def upload(request: Request) -> Response:
    """A file PUT on a stage, unless an upload fault loses it or cuts it short."""
    with _lock:
        fault = _upload_faults[0] if _upload_faults else None
        if fault is not None:
            fault["times"] -= 1
            if fault["times"] <= 0:
                _upload_faults.pop(0)
    if fault is not None and fault["action"] == "drop":
        await request.body()
        return Response()
    if fault is not None and fault["action"] == "truncate":
        table = pq.read_table(pa.BufferReader(await request.body()))
        sink = pa.BufferOutputStream()
        pq.write_table(table.slice(0, table.num_rows // 2), sink)
        request._body = sink.getvalue().to_pybytes()
    return await fakesnow_server.bucket_upload(request)


async def upload_faults(request: Request) -> Response:
    fault = json.loads(await request.body())
    if fault.get("action") not in ("drop", "truncate"):
        return JSONResponse({"success": False, "message": "action: drop | truncate"}, 400)
    with _lock:
        _upload_faults.append(fault)
    return JSONResponse({"success": True})


async def rsa_public_key(request: Request) -> Response:
    registered = json.loads(await request.body())
    with _lock:
        _rsa_public_keys[registered["user"].upper()] = registered["key"].encode()
    return JSONResponse({"success": True})


async def faults(request: Request) -> Response:
    fault = json.loads(await request.body())
    with _lock:
        _faults.append(fault)
    return JSONResponse({"success": True})


def app() -> Starlette:
    # A new account: nothing exists at login but what a client has created.
    fakesnow_server.shared_fs = FakeSnow(
        create_database_on_connect=False,
        create_schema_on_connect=False,
        nop_regexes=ACCOUNT_STATEMENTS,
    )
    handlers = {
        "/session/v1/login-request": login,
        "/session": session,
        "/queries/v1/query-request": query,
        "/fs_bucket/{path:path}": upload,
    }
    routes = [
        Route(r.path, handlers.get(r.path, r.endpoint), methods=r.methods)
        for r in fakesnow_server.routes
    ]
    routes.append(Route("/_test/faults", faults, methods=["POST"]))
    routes.append(Route("/_test/rsa_public_key", rsa_public_key, methods=["POST"]))
    routes.append(Route("/_test/upload_faults", upload_faults, methods=["POST"]))
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
