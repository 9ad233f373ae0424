"""Every owner of a quote rule is built from ``stockpipe.quote_spec`` or agrees with it.

Each test fails when one copy drifts: the pydantic model, the drain's Arrow schema, RAW's
columns, the sources' intervals, dbt's variable and macros, the expectation suites, the
schedules' and dashboards' time zone.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import duckdb
import jinja2
import pyarrow as pa
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from stockpipe import quote_spec
from stockpipe.contracts import Quote, QuoteRejected, validate_quote
from stockpipe.drain.decoding import ARROW_SCHEMA
from stockpipe.sources import SOURCE_INTERVALS
from stockpipe.warehouse.raw_schema import RAW_ARROW_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
SQL_TYPES = {
    "string": pa.string(),
    "number": pa.float64(),
    "integer": pa.int64(),
    "timestamp": pa.timestamp("us"),
}


def test_the_declaration_imports_nothing_of_the_pipeline() -> None:
    tree = ast.parse((ROOT / "stockpipe" / "quote_spec.py").read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {name for name in imported if name and name.startswith("stockpipe")}


@pytest.mark.parametrize("module", ["contracts.py", "market_calendar.py", "drain/decoding.py"])
def test_the_rules_owners_take_no_constant_from_the_settings(module: str) -> None:
    tree = ast.parse((ROOT / "stockpipe" / module).read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "stockpipe.settings" not in modules


def test_the_model_has_the_declared_fields_intervals_and_defaults() -> None:
    fields = Quote.model_fields
    assert tuple(fields) == quote_spec.FIELD_NAMES
    assert {name: f.is_required() for name, f in fields.items()} == {
        f.name: f.required for f in quote_spec.FIELDS
    }
    assert get_args(fields["interval"].annotation) == quote_spec.INTERVALS
    assert fields["interval"].default == quote_spec.DEFAULT_INTERVAL
    assert fields["schema_version"].default == quote_spec.SCHEMA_VERSION


def test_the_drain_parses_the_declared_fields_in_their_json_types() -> None:
    assert tuple(ARROW_SCHEMA.names) == quote_spec.FIELD_NAMES
    for spec in quote_spec.FIELDS:
        parsed = ARROW_SCHEMA.field(spec.name).type
        # Timestamps are parsed as text (the fast path's ISO check), numbers as doubles.
        wanted = pa.float64() if spec.json_type in ("number", "integer") else pa.string()
        assert parsed == wanted, spec.name


def test_raw_has_a_column_of_the_declared_type_for_every_field() -> None:
    for spec in quote_spec.FIELDS:
        assert RAW_ARROW_SCHEMA.field(spec.raw_column).type == SQL_TYPES[spec.json_type]


def test_the_sources_serve_only_intervals_the_contract_takes() -> None:
    assert set(SOURCE_INTERVALS) <= set(quote_spec.INTERVALS)


def dbt_project() -> dict:
    return yaml.safe_load((ROOT / "sql" / "dbt_project.yml").read_text())


def test_dbt_knows_the_exchange_time_zone_only_from_the_declaration() -> None:
    assert dbt_project()["vars"]["exchange_time_zone"] == quote_spec.EXCHANGE_TIME_ZONE
    sql = [p for p in (ROOT / "sql").rglob("*.sql")]
    written = [p.name for p in sql if quote_spec.EXCHANGE_TIME_ZONE in p.read_text()]
    assert not written, "use the exchange_time / exchange_date macros"


def render_macro(call: str) -> str:
    macros = (ROOT / "sql" / "macros" / "quote_contract.sql").read_text()
    variables = dbt_project()["vars"]
    return (
        jinja2.Environment()
        .from_string(macros + "{{ " + call + " }}")
        .render(var=lambda name, default=None: variables.get(name, default))
        .strip()
    )


finite = st.one_of(
    st.floats(min_value=-5, max_value=5, allow_nan=False),
    st.sampled_from([0.0, 1.0, 2.0, quote_spec.MAX_VOLUME, quote_spec.MAX_VOLUME - 1]),
)


@given(st.lists(st.tuples(finite, finite, finite, finite, finite), min_size=1, max_size=40))
def test_sql_pydantic_and_the_declared_ohlcv_rules_agree(bars: list[tuple]) -> None:
    condition = render_macro("valid_ohlcv()")
    connection = duckdb.connect()
    connection.execute(
        "create table bars (open double, high double, low double, close double, volume double)"
    )
    connection.executemany("insert into bars values (?, ?, ?, ?, ?)", bars)
    in_sql = [row[0] for row in connection.execute(f"select {condition} from bars").fetchall()]
    declared = [bool(quote_spec.ohlcv_holds(*bar)) for bar in bars]
    assert in_sql == declared
    now = datetime.now(UTC)
    for (open_, high, low, close, volume), holds in zip(bars, declared, strict=True):
        record = {
            "symbol": "AAPL",
            "ts": now - timedelta(minutes=1),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "source": "test",
            "fetched_at": now,
        }
        try:
            validate_quote(record)
            accepted = True
        except QuoteRejected:
            accepted = False
        assert accepted == holds, record


def test_the_exchange_time_macros_use_the_declared_zone() -> None:
    zone = quote_spec.EXCHANGE_TIME_ZONE
    assert render_macro("exchange_time('ts')") == f"convert_timezone('UTC', '{zone}', ts)"
    assert render_macro("exchange_date('ts')") == f"to_date(convert_timezone('UTC', '{zone}', ts))"


def test_the_raw_suite_checks_every_declared_rule_with_the_declared_bounds() -> None:
    suite = json.loads((ROOT / "expectations" / "raw_stock_prices.json").read_text())
    by_rule = {e["meta"].get("rule"): e for e in suite["expectations"]}
    assert set(quote_spec.OHLCV_RULES) <= set(by_rule)
    assert by_rule["volume_in_range"]["kwargs"]["max_value"] == quote_spec.MAX_VOLUME
    assert tuple(by_rule["intervals"]["kwargs"]["value_set"]) == quote_spec.INTERVALS
    assert by_rule["symbol_pattern"]["kwargs"]["regex"] == quote_spec.SYMBOL_PATTERN


def test_schedules_and_dashboards_keep_the_exchange_clock() -> None:
    prefect = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    zones = {
        entry["timezone"]
        for schedules in prefect["definitions"]["schedules"].values()
        for entry in schedules
    }
    assert zones == {quote_spec.EXCHANGE_TIME_ZONE}
    dashboards = sorted((ROOT / "deployments" / "monitoring" / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        assert json.loads(path.read_text())["timezone"] == quote_spec.EXCHANGE_TIME_ZONE, path
