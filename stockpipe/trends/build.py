"""Build the trend marts: the dbt project in ``sql/`` (its models and their tests).

The same project and adapter (dbt-snowflake) run on both warehouses. On Snowflake dbt logs
in as the transformer role with the settings' credentials; on the embedded warehouse its
connector is answered by fakesnow on the warehouse's own DuckDB instance
(:meth:`~stockpipe.warehouse.base.Warehouse.serving_connector`). dbt runs through its own
runner; inside a flow run, when asked for, through prefect-dbt's, which makes each model and
test a task of its own in the Prefect UI.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stockpipe.quote_spec import EXCHANGE_TIME_ZONE
from stockpipe.settings import Settings
from stockpipe.trends.snapshot import current_snapshot, write_snapshot
from stockpipe.warehouse import Warehouse, WarehouseError

# The project's sql/ (stockpipe/sql links to it in a checkout; package data when installed).
PROJECT_DIR = Path(str(resources.files("stockpipe") / "sql"))
PROFILE = "stockpipe"
# The tables the build maintains in MARTS (sql/models/marts).
MARTS = (
    "MINUTE_BARS",
    "DAILY_BARS",
    "DAILY_RSI",
    "DAILY_TRENDS",
    "LATEST_QUOTE",
    "TOP_MOVERS",
    "TOP_DAILY_CLOSES",
)
# dbt scrubs the values of DBT_ENV_SECRET_* variables from its logs and artifacts.
_SECRET_ENV = "DBT_ENV_SECRET_STOCKPIPE_PASSWORD"  # noqa: S105 - a variable name
_SECRET_KEY_ENV = "DBT_ENV_SECRET_STOCKPIPE_PRIVATE_KEY"  # noqa: S105
_SECRET_PASSPHRASE_ENV = "DBT_ENV_SECRET_STOCKPIPE_PRIVATE_KEY_PASSPHRASE"  # noqa: S105


class TrendBuildFailed(WarehouseError):
    """A model or a data test of the trend build failed (the report names which)."""

    def __init__(self, report: BuildReport):
        self.report = report
        super().__init__(report.summary())


@dataclass(frozen=True)
class NodeResult:
    """One model or test of a build."""

    name: str
    # "model" | "test" | "unit_test" (run_unit_tests) | "operation" (a hook, in progress
    # reports only)
    kind: str
    status: str  # dbt's: success, error, fail, warn, pass, skipped
    seconds: float
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("error", "fail", "runtime error")


@dataclass(frozen=True)
class BuildReport:
    full: bool
    seconds: float
    nodes: list[NodeResult] = field(default_factory=list)
    # Nothing to take in: dbt did not run.
    up_to_date: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.failed]

    def summary(self) -> str:
        if self.up_to_date:
            return f"trend marts up to date: nothing new in the load log ({self.seconds:.2f}s)"
        models = [n for n in self.nodes if n.kind == "model"]
        tests = [n for n in self.nodes if n.kind == "test"]
        units = [n for n in self.nodes if n.kind == "unit_test"]
        mode = "full" if self.full else "incremental"

        def done(nodes: list[NodeResult]) -> str:  # a node dbt skipped did not pass
            return f"{sum(not (n.failed or n.status == 'skipped') for n in nodes)}/{len(nodes)}"

        if units and not models:
            text = f"dbt unit tests: {done(units)} passed ({self.seconds:.1f}s)"
        else:
            text = (
                f"{mode} trend build: {done(models)} models, {done(tests)} tests"
                + (f", {done(units)} unit tests" if units else "")
                + f" passed ({self.seconds:.1f}s)"
            )
        for node in self.failures:
            text += f"\n  {node.kind} {node.name} {node.status}: {node.message}"
        return text


def dbt_profile(settings: Settings, login: SnowflakeLogin | None = None) -> dict[str, Any]:
    """profiles.yml for the warehouse the settings name (secrets as env_var references).

    Args:
        login: on Snowflake, the login dbt uses (default: :func:`snowflake_login`'s).
    """
    wh = settings.warehouse
    if wh.backend == "embedded":
        output: dict[str, Any] = {
            "type": "snowflake",
            "account": "embedded",
            "user": "stockpipe",
            "password": "embedded",
            "database": wh.database,
            "schema": "STAGING",
            "threads": 1,
            # Sessions reused (dbt's default; a new one per model and test is measurably
            # slower, README's benchmarks): a statement that fails inside a DuckDB
            # transaction aborts it, and DuckDB never commits an aborted transaction, so no
            # later statement can commit a failed model's DELETE here (Snowflake would: see
            # the snowflake profile below).
            "reuse_connections": True,
        }
    else:
        login = login or snowflake_login(settings)
        output = {
            "type": "snowflake",
            **login.profile_fields,
            "role": wh.transformer_role,
            "database": wh.database,
            "schema": "STAGING",
            "threads": settings.trends.snowflake_threads,
            "connect_retries": 3,
            # Each model on a session of its own, closed after it: an incremental model whose
            # INSERT failed leaves its DELETE in an open transaction (dbt-snowflake does not
            # roll back on a SQL error), and the next model's DDL on a reused session would
            # commit it. A closed session's open transaction is rolled back.
            "reuse_connections": False,
            # Costs per purpose in QUERY_HISTORY, as the other processes' sessions.
            "query_tag": "stockpipe:transform",
        }
        for name in ("host", "port", "protocol"):
            if getattr(wh, name) is not None:
                output[name] = getattr(wh, name)
    return {PROFILE: {"target": wh.backend, "outputs": {wh.backend: output}}}


@dataclass(frozen=True)
class SnowflakeLogin:
    """How dbt logs in to Snowflake: profile fields (secrets as ``env_var`` references) and
    the secret values those references read from the environment."""

    profile_fields: dict[str, Any]
    secrets: dict[str, str]


def snowflake_login(settings: Settings) -> SnowflakeLogin:
    """The settings' login, or, where the settings name a connector block (the VM's
    worker), the block's: its account, user, virtual warehouse and password or key pair.

    Raises:
        WarehouseError: no password or key to log in with, or a block for another database.
    """
    from stockpipe.warehouse.snowflake import connector_block_for, load_connector_block, own_login

    wh = settings.warehouse
    # dbt runs as the transformer: its own service user where the settings give it one.
    block_name, own = connector_block_for(settings, "transform"), own_login(settings, "transform")
    if block_name:
        block = load_connector_block(block_name, wh.database)
        creds = block.credentials
        account, user, warehouse = creds.account, creds.user, block.warehouse
        password, key_path = creds.password, creds.private_key_path
        key = creds.private_key.get_secret_value().decode() if creds.private_key else None
        passphrase = creds.private_key_passphrase
        where = f"connector block {block_name}"
    elif own is not None:
        account, user, warehouse = wh.account, own.user, wh.warehouse
        password, key_path, key, passphrase = None, own.private_key_file, None, None
        where = "STOCKPIPE_WAREHOUSE__TRANSFORMER_LOGIN__PRIVATE_KEY_FILE"
    else:
        account, user, warehouse = wh.account, wh.user, wh.warehouse
        password, key_path, key, passphrase = wh.password, wh.private_key_file, None, None
        where = "STOCKPIPE_WAREHOUSE__PASSWORD (or __PRIVATE_KEY_FILE)"
    fields: dict[str, Any] = {"account": account, "user": user, "warehouse": warehouse}
    secrets: dict[str, str] = {}
    if key:
        fields["private_key"] = _env_reference(_SECRET_KEY_ENV)
        secrets[_SECRET_KEY_ENV] = key
    elif key_path:
        fields["private_key_path"] = str(key_path)
    elif password:
        fields["password"] = _env_reference(_SECRET_ENV)
        secrets[_SECRET_ENV] = password.get_secret_value()
    else:
        raise WarehouseError(
            f"the trend build needs a password or a key pair in {where}: dbt logs in with "
            "it as the transformer role"
        )
    if passphrase and (key or key_path):
        fields["private_key_passphrase"] = _env_reference(_SECRET_PASSPHRASE_ENV)
        secrets[_SECRET_PASSPHRASE_ENV] = passphrase.get_secret_value()
    return SnowflakeLogin(fields, secrets)


def _env_reference(name: str) -> str:
    return "{{ env_var('" + name + "') }}"


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dbt_args(
    settings: Settings, command: list[str], variables: dict[str, Any] | None = None
) -> list[str]:
    """``command`` with the project, profile, target and variables this installation uses
    (and ``variables`` besides)."""
    state = settings.dbt_dir
    variables = {
        "reader_role": settings.warehouse.reader_role,
        "exchange_time_zone": EXCHANGE_TIME_ZONE,
        **(variables or {}),
    }
    return [
        *command,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(state),
        "--target-path",
        str(state / "target"),
        "--log-path",
        str(state / "logs"),
        "--vars",
        json.dumps(variables),
    ]


@contextlib.contextmanager
def dbt_session(warehouse: Warehouse, settings: Settings) -> Iterator[None]:
    """Within the block, dbt invocations reach ``warehouse`` as the settings say."""
    state = settings.dbt_dir
    state.mkdir(parents=True, exist_ok=True)
    profile = state / "profiles.yml"
    login = snowflake_login(settings) if settings.warehouse.backend == "snowflake" else None
    text = yaml.safe_dump(dbt_profile(settings, login), sort_keys=False)
    if not profile.exists() or profile.read_text() != text:
        profile.write_text(text)
    with _environment(login.secrets if login else {}), warehouse.serving_connector():
        yield


def invoke(
    warehouse: Warehouse,
    settings: Settings,
    command: list[str],
    progress: Callable[[NodeResult], None] | None = None,
    variables: dict[str, Any] | None = None,
    node_tasks: bool = False,
) -> Any:
    """Run a dbt ``command`` (e.g. ``["build"]``) with ``variables``; dbt's result.

    In a Prefect flow run with ``node_tasks``, through prefect-dbt's runner (a task per model
    and test, logs in the flow run's; what each costs: README "Benchmark"); otherwise
    through dbt's own runner, which needs no Prefect API, with ``progress``
    called as each model and test finishes (dbt's own lines are then kept to warnings).
    """
    args = dbt_args(settings, command, variables)
    with dbt_session(warehouse, settings):
        if node_tasks and _in_flow_run():
            from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

            state = settings.dbt_dir
            runner = PrefectDbtRunner(
                settings=PrefectDbtSettings(
                    project_dir=PROJECT_DIR, profiles_dir=state, target_path=state / "target"
                ),
                raise_on_failure=False,
            )
            return runner.invoke(args)
        from dbt.cli.main import dbtRunner

        # dbt's timestamped info lines would go to the caller's stdout (the command's
        # output): only its warnings and errors.
        args = [*args, "--log-level", "warn"]
        if command[0] != "docs":
            # The results come back as objects; manifest.json and run_results.json are
            # for readers of target/ (the docs site, prefect-dbt's runner inside a flow),
            # and writing them was a measurable part of every build (README, "Trend marts").
            args.append("--no-write-json")
        if progress is None:
            return dbtRunner().invoke(args)

        def on_event(event: Any) -> None:
            if event.info.name == "NodeFinished":
                progress(_finished_node(event.data))

        return dbtRunner(callbacks=[on_event]).invoke(args)


def _in_flow_run() -> bool:
    if "prefect" not in sys.modules:  # not imported: not in a flow either
        return False
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def build_marts(
    warehouse: Warehouse,
    settings: Settings,
    full: bool = False,
    progress: Callable[[NodeResult], None] | None = None,
    node_tasks: bool = False,
) -> BuildReport:
    """Build the trend marts and run their tests (``dbt build``).

    Args:
        warehouse: a session on the warehouse to build in (embedded: dbt shares its DuckDB
            instance; Snowflake: dbt opens its own sessions as the transformer role).
        full: rebuild the incremental models from all of RAW (``--full-refresh``); otherwise
            only the symbols and sessions the load log names are rebuilt.
        progress: called with each model's and test's result as it finishes (not when
            ``node_tasks`` makes each a task of the flow run).
        node_tasks: inside a flow run, each model and test as a task of its own (~0.3 s of
            CPU each: README "Benchmark").

    Raises:
        TrendBuildFailed: a model or test failed; what was built before it stays.
    """
    started = time.perf_counter()
    if not full and _up_to_date(warehouse):
        _snapshot_for_readers(warehouse, settings, missing_only=True)
        return BuildReport(full, time.perf_counter() - started, up_to_date=True)
    # The frequent incremental builds run the models and the every_build tests (the keys of
    # the incremental models); a full build runs every data test (sql/dbt_project.yml). The
    # unit tests check the SQL's logic on fixed inputs, which no build changes: they run
    # with the project's tests (run_unit_tests), as dbt advises, not in production builds.
    command = (
        ["build", "--full-refresh", "--exclude-resource-type", "unit_test"]
        if full
        else [
            "build",
            "--select",
            "resource_type:model",
            "tag:every_build",
            "--indirect-selection",
            "empty",
        ]
    )
    result = invoke(warehouse, settings, command, progress, node_tasks=node_tasks)
    if result.exception is not None:
        raise WarehouseError(f"dbt could not run the trend build: {result.exception}")
    nodes = _node_results(result.result)
    if any(n.failed for n in nodes):
        raise TrendBuildFailed(BuildReport(full, time.perf_counter() - started, nodes))
    _snapshot_for_readers(warehouse, settings)
    return BuildReport(full, time.perf_counter() - started, nodes)


def run_unit_tests(warehouse: Warehouse, settings: Settings) -> BuildReport:
    """The dbt unit tests (``unit_tests:`` in the models' YAML): the RSI model and the window
    macros on fixed inputs with exact expected rows. Nothing is built or changed.

    Raises:
        TrendBuildFailed: a unit test failed (the report names it and why).
    """
    started = time.perf_counter()
    result = invoke(warehouse, settings, ["test", "--select", "test_type:unit"])
    if result.exception is not None:
        raise WarehouseError(f"dbt could not run the unit tests: {result.exception}")
    report = BuildReport(False, time.perf_counter() - started, _node_results(result.result))
    if report.failures:
        raise TrendBuildFailed(report)
    return report


def _snapshot_for_readers(
    warehouse: Warehouse, settings: Settings, missing_only: bool = False
) -> None:
    """On the embedded warehouse, leave the marts where readers can reach them while a
    drain holds the file (:mod:`stockpipe.trends.snapshot`)."""
    if warehouse.backend != "embedded":
        return
    if missing_only and current_snapshot(settings.marts_snapshot_dir) is not None:
        return
    write_snapshot(warehouse, settings.marts_snapshot_dir)


DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


def generate_docs(warehouse: Warehouse, settings: Settings, docs_dir: Path) -> Path:
    """dbt's docs site for the project (models, columns, tests, the lineage graph) in
    ``docs_dir``; the path of its index.html.

    Raises:
        WarehouseError: dbt could not generate it (the message says why).
    """
    # dbt's own runner even in a flow run: docs generate compiles every model and test, and
    # a task per compile would show nothing worth its CPU.
    result = invoke(warehouse, settings, ["docs", "generate"])
    if result.exception is not None or not result.success:
        raise WarehouseError(f"dbt docs generate failed: {result.exception or result.result}")
    target = settings.dbt_dir / "target"
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name in DOCS_FILES:
        shutil.copyfile(target / name, docs_dir / name)
    return docs_dir / "index.html"


def _up_to_date(warehouse: Warehouse) -> bool:
    """Nothing in the load log, and every mart built: the last build took everything in.

    The log's entries are deleted only when a build succeeded in full
    (sql/macros/take_in_load_log.sql), so an empty log means nothing is left to rebuild.
    Neither question needs a running warehouse on Snowflake (each resume bills at least
    60 s): ``count(*)`` of a whole table is answered from metadata, and so is SHOW, where
    INFORMATION_SCHEMA would need the warehouse.
    """
    if warehouse.query("select count(*) from RAW.LOAD_LOG")[0][0]:
        return False
    result = warehouse.execute("show terse tables in schema MARTS")
    built = {row[result.columns.index("name")].upper() for row in result.rows}
    return set(MARTS) <= built


def _node_results(execution: Any) -> list[NodeResult]:
    return [
        NodeResult(
            name=result.node.name,
            kind=str(result.node.resource_type),
            status=str(result.status),
            seconds=float(result.execution_time or 0),
            message=str(result.message or ""),
        )
        for result in getattr(execution, "results", None) or []
        # on-run-end hooks are results too; they are not models.
        if str(result.node.resource_type) in ("model", "test", "unit_test")
    ]


def _finished_node(data: Any) -> NodeResult:
    """A NodeResult of a NodeFinished event's data (dbt's protobuf message)."""
    return NodeResult(
        name=data.node_info.node_name,
        kind=data.node_info.unique_id.split(".")[0],  # model, test, operation (a hook)
        status=str(data.run_result.status or data.node_info.node_status),
        seconds=float(data.run_result.execution_time or 0),
        message=str(data.run_result.message or ""),
    )
