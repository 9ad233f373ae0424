"""Validate a session's data with Great Expectations (GX Core 1.x).

Suites live in ``expectations/`` (one per table, GX's own JSON). For a session the
validator reads each table's rows through the warehouse connection (Snowflake or the
embedded one alike), adds the few derived columns the suites check (MIN_PRICE,
BODY_OUTSIDE_RANGE, TS_EPOCH), and runs data source -> asset -> batch -> suite ->
validation definition -> checkpoint. Expectations marked ``"only": "market_open"``
(freshness) run only while the NYSE session is open, ``"only": "market_closed"``
(completeness against the session's minutes) only after it closed; the others are
reported as skipped, not failed.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from stockpipe import market_calendar
from stockpipe.quote_spec import ohlcv_holds
from stockpipe.settings import Settings
from stockpipe.warehouse import Warehouse, WarehouseError

if TYPE_CHECKING:
    from stockpipe.alerts import Delivery

log = logging.getLogger(__name__)
# The project's expectations/, shipped as package data (a link in a checkout).
EXPECTATIONS_DIR = Path(str(resources.files("stockpipe") / "expectations"))
SUITES = ("raw_stock_prices", "staging_stock_prices", "marts_daily_bars")
# Completeness tolerance: a symbol may miss this share of a session's minutes (halts).
MIN_BAR_SHARE = 0.98
NO_BARS = "the session has bars"
NO_BARS_WHY = (
    "no bar of this session is in RAW.STOCK_PRICES, so there is nothing to check: ingest "
    "it ('stockpipe ingest --session DATE') and drain ('stockpipe drain') first"
)


@dataclass(frozen=True)
class Outcome:
    suite: str
    expectation: str
    success: bool | None  # None: skipped
    why: str
    examples: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.suite}: {self.expectation}"


@dataclass
class ValidationReport:
    session: date
    market_open: bool
    outcomes: list[Outcome]
    docs_dir: Path | None = None
    docs_url: str | None = None  # the S3 copy, when configured
    # Why the Data Docs still load their scripts and styles from CDNs (None: they are local)
    docs_offline_problem: str | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.success is False]

    @property
    def success(self) -> bool:
        return not self.failed

    def suite_success(self) -> dict[str, bool]:
        return {
            s: all(o.success is not False for o in self.outcomes if o.suite == s) for s in SUITES
        }

    def summary(self) -> str:
        validated = f"validation of session {self.session}" + (
            " (still open: completeness is checked after the close)" if self.market_open else ""
        )
        if any(o.expectation == NO_BARS and o.success is False for o in self.outcomes):
            return f"{validated} FAILED: {NO_BARS_WHY}"
        checked = [o for o in self.outcomes if o.success is not None]
        head = (
            f"{validated}: {len(checked) - len(self.failed)}/{len(checked)} expectations "
            f"passed, {len(self.outcomes) - len(checked)} skipped"
        )
        if not self.failed:
            return head
        return (
            head
            + "; FAILED: "
            + "; ".join(f"{o.name} ({o.why}) e.g. {o.examples[:3]}" for o in self.failed)
        )


def _describe(kind: str, kwargs: dict) -> str:
    """``type(target)`` for an expectation, run or skipped."""
    target = (
        kwargs.get("column")
        or kwargs.get("column_list")
        or (
            f"{kwargs.get('column_A')} vs {kwargs.get('column_B')}"
            if "column_A" in kwargs
            else "table"
        )
    )
    return f"{kind}({target})"


def session_frames(
    warehouse: Warehouse, session: market_calendar.Session, watchlist: list[str]
) -> dict[str, pd.DataFrame]:
    """The rows each suite checks for ``session``, with the derived columns."""
    bounds = (session.open.replace(tzinfo=None), session.close.replace(tzinfo=None))
    raw = warehouse.query_frame("select * from RAW.STOCK_PRICES where ts >= %s and ts < %s", bounds)
    raw.columns = [c.upper() for c in raw.columns]
    prices = raw[["OPEN", "HIGH", "LOW", "CLOSE"]].astype(float)
    raw["MIN_PRICE"] = prices.min(axis=1)
    body_low = prices[["OPEN", "CLOSE"]].min(axis=1)
    body_high = prices[["OPEN", "CLOSE"]].max(axis=1)
    raw["BODY_OUTSIDE_RANGE"] = (prices["HIGH"] >= prices["LOW"]) & (
        (body_high > prices["HIGH"]) | (body_low < prices["LOW"])
    )
    try:
        staging = warehouse.query_frame(
            "select symbol, ts, bar_interval from STAGING.VALID_BARS where ts >= %s and ts < %s",
            bounds,
        )
    except Exception as exc:
        # Snowflake: "does not exist or not authorized"; DuckDB: "... does not exist!"
        if "does not exist" not in str(exc):
            raise
        raise WarehouseError(
            f"the trend models are not built in {warehouse.location} yet (STAGING.VALID_BARS, "
            "MARTS.DAILY_BARS): run 'stockpipe trends' once, then validate"
        ) from None
    staging.columns = [c.upper() for c in staging.columns]
    # Seconds since 1970 (UTC): GX compares numbers reliably across pandas' time units.
    staging["TS_EPOCH"] = (
        (pd.to_datetime(staging["TS"]) - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    ).astype("int64")
    daily = warehouse.query_frame(
        "select symbol, session_date, bar_count from MARTS.DAILY_BARS where session_date = %s",
        (session.day,),
    )
    daily.columns = [c.upper() for c in daily.columns]
    daily = daily[daily["SYMBOL"].isin(watchlist)].reset_index(drop=True)
    return {"raw_stock_prices": raw, "staging_stock_prices": staging, "marts_daily_bars": daily}


def expected_valid_bars(raw: pd.DataFrame) -> int:
    """Distinct (symbol, ts, interval) among raw rows that keep the contract's OHLCV rules."""
    numbers = raw[["OPEN", "HIGH", "LOW", "CLOSE", "VOLUME"]].astype(float)
    valid = ohlcv_holds(*(numbers[c] for c in numbers.columns))
    return int(raw.loc[valid, ["SYMBOL", "TS", "BAR_INTERVAL"]].drop_duplicates().shape[0])


def validate_session(
    settings: Settings,
    warehouse: Warehouse,
    session_day: date | None = None,
    now: datetime | None = None,
    docs_dir: Path | None = None,
) -> ValidationReport:
    """Run every suite on one session (default: the latest closed one, as every command's).

    A session still open at ``now`` is validated only when named: its completeness
    expectations wait for the close, its freshness is checked instead.

    Args:
        docs_dir: build GX Data Docs there (and copy them to S3 when
            STOCKPIPE_VALIDATION__DATA_DOCS_S3_BUCKET is set).
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    now = now or datetime.now(UTC)
    session = (
        market_calendar.session(session_day)
        if session_day
        else market_calendar.latest_closed_session(now)
    )
    market_open = session.open <= now < session.close
    watchlist = settings.source.watchlist
    frames = session_frames(warehouse, session, watchlist)
    minutes = len(session.minutes)
    parameters = {
        "watchlist": watchlist,
        "watchlist_size": len(watchlist),
        "valid_raw_bars": expected_valid_bars(frames["raw_stock_prices"]),
        "fresh_after_epoch": int(
            (now - timedelta(minutes=settings.validation.freshness_minutes)).timestamp()
        ),
        "min_bars": int(minutes * MIN_BAR_SHARE),
        "max_bars": minutes,
    }

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = gx.get_context(mode="ephemeral")
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX draws progress bars per metric; in logs and the CLI they are noise.
        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        sites = _data_docs_sites(docs_dir)
        for site_name, site_config in sites.items():
            context.add_data_docs_site(site_name=site_name, site_config=site_config)
        actions = [UpdateDataDocsAction(name="data-docs", site_names=list(sites))] if sites else []
        source = context.data_sources.add_pandas("warehouse")
        outcomes: list[Outcome] = []
        for name in SUITES:
            spec = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())
            active, skipped = [], []
            for expectation in spec["expectations"]:
                only = expectation.get("meta", {}).get("only")
                if (only == "market_open" and not market_open) or (
                    only == "market_closed" and market_open
                ):
                    skipped.append(expectation)
                else:
                    active.append(expectation)
            suite = context.suites.add(
                gx.ExpectationSuite(name=name, expectations=active, meta=spec.get("meta"))
            )
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{name}-{session.day}", data=batch, suite=suite)
            )
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=f"{name}-checkpoint",
                    validation_definitions=[definition],
                    actions=actions,
                    result_format={"result_format": "SUMMARY"},
                )
            )
            result = checkpoint.run(
                batch_parameters={"dataframe": frames[name]},
                expectation_parameters=parameters,
            )
            for run_result in result.run_results.values():
                for r in run_result.results:
                    examples = []  # examples are for failures
                    if not r.success:
                        examples = r.result.get("partial_unexpected_list") or (
                            [r.result["observed_value"]] if "observed_value" in r.result else []
                        )
                    config = r.expectation_config
                    outcomes.append(
                        Outcome(
                            name,
                            _describe(config.type, config.kwargs),
                            bool(r.success),
                            (config.meta or {}).get("why", ""),
                            [str(x) for x in examples[:5]],
                        )
                    )
            for expectation in skipped:
                outcomes.append(
                    Outcome(
                        name,
                        _describe(expectation["type"], expectation["kwargs"]),
                        None,
                        expectation["meta"]["why"]
                        + " (skipped: market "
                        + ("open" if market_open else "closed")
                        + ")",
                    )
                )
    if frames["raw_stock_prices"].empty:
        # Row-level expectations hold vacuously on no rows; a session without data fails.
        outcomes.insert(0, Outcome(SUITES[0], NO_BARS, False, NO_BARS_WHY, ["0 rows"]))
    report = ValidationReport(session.day, market_open, outcomes)
    if docs_dir is not None:
        from stockpipe.validation.data_docs import AssetsUnavailable, localize

        report.docs_dir = docs_dir / "index.html"
        try:
            localize(
                docs_dir, settings.validation.docs_assets_dir, settings.validation.npm_registry
            )
        except AssetsUnavailable as exc:
            report.docs_offline_problem = str(exc)
        report.docs_url = publish_docs_to_s3(settings, docs_dir)
    record_outcome(report, settings.validation_record, now)
    return report


def record_outcome(report: ValidationReport, path: Path, now: datetime) -> None:
    """Keep the latest validation's outcome where the dashboard and the report read it
    (validation reads the warehouse as READER and writes nothing there)."""
    checked = [o for o in report.outcomes if o.success is not None]
    record = {
        "session": report.session.isoformat(),
        "validated_at": now.isoformat(),
        "success": report.success,
        "passed": len(checked) - len(report.failed),
        "checked": len(checked),
        "failed": [o.name for o in report.failed],
        "summary": report.summary(),
        "docs": str(report.docs_url or report.docs_dir or ""),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2))
    partial.replace(path)


def latest_outcome(path: Path) -> dict | None:
    """What :func:`record_outcome` kept, or None before the first validation."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _data_docs_sites(docs_dir: Path | None) -> dict[str, dict]:
    """The GX Data Docs site: a local directory (GX 1.x builds sites on a filesystem)."""
    if docs_dir is None:
        return {}
    return {
        "local": {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }


def publish_docs_to_s3(settings: Settings, docs_dir: Path) -> str | None:
    """Copy the built Data Docs to STOCKPIPE_VALIDATION__DATA_DOCS_S3_BUCKET, if set."""
    bucket = settings.validation.data_docs_s3_bucket
    if not bucket:
        return None
    from stockpipe.object_store import s3_bucket

    prefix = settings.validation.data_docs_s3_prefix
    s3_bucket(settings, bucket).upload_from_folder(str(docs_dir), prefix)
    return f"s3://{bucket}/{prefix}/index.html"


def run_validation(
    settings: Settings, session_day: date | None = None, now: datetime | None = None
) -> ValidationReport:
    """A validation as ``stockpipe validate`` and the validate flow run it: a read session
    on the warehouse, every suite, Data Docs in ``<home>/data-docs``."""
    with Warehouse.connect(settings, "read") as warehouse:
        return validate_session(
            settings, warehouse, session_day, now=now, docs_dir=settings.home_dir / "data-docs"
        )


def publish_outcome(settings: Settings, report: ValidationReport) -> Delivery | None:
    """Set the validation metrics, and on failure send one message to the alerts topic.

    The alert is best effort, with short timeouts: a broker that is down delays the result
    by seconds, not minutes, and never changes it.

    Returns:
        None when there is nothing to alert; else what became of the alert.
    """
    from stockpipe import alerts, metrics

    for suite, ok in report.suite_success().items():
        metrics.VALIDATION_SUCCESS.labels(suite).set(1 if ok else 0)
    if report.success:
        return None
    message = {
        "kind": "validation",
        "session_date": str(report.session),
        "failed": [o.name for o in report.failed],
        "summary": report.summary()[:4000],
    }
    return alerts.send_best_effort(
        settings,
        [(f"validation|{report.session}".encode(), json.dumps(message).encode(), None)],
    )


@dataclass(frozen=True)
class ValidationRun:
    """The validation stage's outcome: the suites' report, and what became of the failure
    alert (None when there was nothing to alert)."""

    report: ValidationReport
    alert: Delivery | None


def validate_and_alert(
    settings: Settings, session_day: date | None = None, now: datetime | None = None
) -> ValidationRun:
    """The validation stage, as ``stockpipe validate`` and the validate flow run it:
    :func:`run_validation`, then :func:`publish_outcome` (metrics, and an alert on failure)."""
    report = run_validation(settings, session_day, now=now)
    return ValidationRun(report=report, alert=publish_outcome(settings, report))
