"""Ingest: fetch bars -> check them against the message contract -> publish to Kafka.

Invalid bars are never published; they are counted by reason and logged with an example,
so a source that starts sending garbage shows up in the run summary, not in the warehouse.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from stockpipe import market_calendar, metrics
from stockpipe.contracts import (
    Quote,
    QuoteRejected,
    conforming,
    contract_messages,
    describe_reasons,
    validate_quote,
)
from stockpipe.quote_spec import BAR_FIELDS, EXCHANGE_TZ
from stockpipe.settings import Settings
from stockpipe.sources import Interval, QuoteSource, make_source
from stockpipe.streaming.producer import PublishReport, QuoteProducer

log = logging.getLogger(__name__)
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class RefusedBar:
    """A source's bar the contract refused: the record as given, and why."""

    record: dict
    reason: str
    message: str

    def dead_letter(self) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        """(key, value, headers) for the dead-letter topic: the record as JSON (values the
        JSON cannot hold, as text), with the drain's header names for why and where from."""
        symbol = self.record.get("symbol")
        value = json.dumps(self.record, default=str, allow_nan=True).encode()
        return (
            symbol.encode() if isinstance(symbol, str) else None,
            value,
            [
                ("dlq.reason", self.reason.encode()),
                ("dlq.error.class", b"QuoteRejected"),
                ("dlq.error.message", self.message[:1000].encode("utf-8", "backslashreplace")),
                ("dlq.source.topic", b""),  # not from a topic: from a source, at ingest
                ("dlq.source.ingest", str(self.record.get("source")).encode()),
            ],
        )


@dataclass
class QuoteCheck:
    """Bars that passed the contract (a frame of :data:`BAR_FIELDS`, ``ts`` UTC), what they
    are, and why the others did not pass."""

    bars: pd.DataFrame
    interval: Interval
    source: str
    fetched_at: datetime
    rejected: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    # Every rejected bar as the source gave it, for the dead-letter topic: a live feed
    # cannot be fetched again, so a bar the contract refuses is kept, not only counted.
    refused: list[RefusedBar] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def quotes(self) -> list[Quote]:
        """The passed bars as contract objects (one by one: for small batches and tests)."""
        return [
            validate_quote(record)
            for record in _records(self.bars, self.interval, self.source, self.fetched_at)
        ]

    def messages(self, bars: pd.DataFrame | None = None) -> list[tuple[str, str]]:
        """(key, JSON value) of each passed bar (or of ``bars``, a subset), for the topic."""
        bars = self.bars if bars is None else bars
        values = contract_messages(bars, self.interval, self.source, self.fetched_at)
        return list(zip(bars["symbol"].tolist(), values, strict=True))


@dataclass
class IngestReport:
    start: datetime
    end: datetime
    source: str
    fetched: int
    published: int
    unchanged: int
    rejected: dict[str, int]
    symbols_with_bars: frozenset[str] = frozenset()
    # Symbols a keyed provider was not asked for: its plan's calls for the day are spent.
    unfetched: tuple[str, ...] = ()
    # Symbols the source answered for with no bars (an unknown ticker, a halt).
    without_bars: tuple[str, ...] = ()

    def summary(self) -> str:
        text = (
            f"{self.source} {self.start:%Y-%m-%d %H:%M}..{self.end:%H:%M} UTC: fetched "
            f"{self.fetched}, published {self.published}, already published {self.unchanged}, "
            f"rejected {sum(self.rejected.values())}"
        )
        text += describe_reasons(self.rejected)
        if self.rejected:
            text += " -> the dead-letter topic"
        if self.without_bars:
            text += f"; no bars for {', '.join(self.without_bars)}"
        if self.unfetched:
            text += (
                f"; not fetched, the provider's calls for the day are spent: "
                f"{', '.join(self.unfetched)} (the next run fetches them)"
            )
        return text


def fetch_bars(
    source: QuoteSource,
    symbols: list[str],
    start: datetime,
    end: datetime,
    interval: Interval = "1m",
) -> pd.DataFrame:
    """The source's ``interval`` bars in ``[start, end)`` that had ended when it was asked.

    A bar still forming (a provider's current minute, a session not yet closed, a window
    that reaches into the future) is left for a later fetch: what is published is final.
    """
    asked_at = datetime.now(UTC)
    bars = source.fetch(symbols, start, min(end, asked_at), interval)
    metrics.QUOTES_FETCHED.labels(source.name).inc(len(bars))
    ended = bars_ended(bars, interval, asked_at)
    if not ended.all():
        log.info("%d bars had not ended at %s: left for the next fetch", (~ended).sum(), asked_at)
        bars = bars[ended].reset_index(drop=True)
    log.info("%s returned %d bars for %d symbols", source.name, len(bars), len(symbols))
    return bars


def bars_ended(bars: pd.DataFrame, interval: Interval, moment: datetime) -> np.ndarray:
    """Which of ``bars`` (a ``ts`` column of bar starts) had ended at ``moment``: a minute
    bar one minute after its start, a daily bar at its session's close."""
    if bars.empty:
        return np.ones(0, dtype=bool)
    ts = pd.to_datetime(bars["ts"], utc=True)
    if interval == "1d":
        # Looked up by position in the calendar's schedule: a date object per bar costs
        # seconds on a backfill's millions. A date that is not a session (NaT) is left to
        # the contract to refuse.
        days = pd.DatetimeIndex(ts.dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None)).normalize()
        closes = market_calendar.nyse().schedule["close"].reindex(days)
        ended = (closes <= pd.Timestamp(moment)).to_numpy(dtype=bool)
        return ended | closes.isna().to_numpy()
    return np.array(ts + pd.Timedelta(minutes=1) <= pd.Timestamp(moment), dtype=bool)


def check_bars(
    bars: pd.DataFrame,
    source: str,
    fetched_at: datetime | None = None,
    interval: Interval = "1m",
) -> QuoteCheck:
    """Keep the source rows of ``interval`` bars that pass the contract; count and describe
    the rest.

    Rows are checked column-wise (:func:`conforming`); a row that does not clearly pass
    goes through :func:`validate_quote`, which either accepts it or says why not.
    """
    fetched_at = fetched_at or datetime.now(UTC)
    bars = bars.reset_index(drop=True)
    passed = conforming(bars, source, fetched_at)
    good = [_normalised(bars[passed])]
    rejected: Counter = Counter()
    examples: list[str] = []
    refused: list[RefusedBar] = []
    accepted = []
    for record in _records(bars[~passed], interval, source, fetched_at):
        try:
            accepted.append(validate_quote(record))
        except QuoteRejected as exc:
            rejected[exc.reason] += 1
            refused.append(RefusedBar(record, exc.reason, exc.message))
            if len(examples) < MAX_EXAMPLES:
                examples.append(f"{record.get('symbol')!s} {record.get('ts')!s}: {exc.message}")
    if accepted:
        good.append(
            _normalised(
                pd.DataFrame(
                    [q.model_dump(include=set(BAR_FIELDS)) for q in accepted],
                    columns=list(BAR_FIELDS),
                )
            )
        )
    check = QuoteCheck(
        pd.concat(good, ignore_index=True) if len(good) > 1 else good[0],
        interval,
        source,
        fetched_at,
        rejected,
        examples,
        refused,
    )
    for reason, count in check.rejected.items():
        metrics.QUOTES_REJECTED.labels(reason).inc(count)
    if check.rejected:
        log.warning(
            "%d bars rejected by the contract: %s; e.g. %s",
            check.rejected_total,
            dict(check.rejected),
            check.examples[0],
        )
    return check


def _records(
    bars: pd.DataFrame, interval: Interval, source: str, fetched_at: datetime
) -> list[dict]:
    """Rows of ``bars`` as contract records (one dict each: for the few rows that need it)."""
    meta = {"interval": interval, "source": source, "fetched_at": fetched_at}
    return [record | meta for record in bars.to_dict("records")]


def _normalised(bars: pd.DataFrame) -> pd.DataFrame:
    """Contract-valid rows with one set of column types (floats, UTC ts)."""
    return pd.DataFrame(
        {
            "symbol": bars["symbol"].astype(object),
            "ts": pd.to_datetime(bars["ts"], utc=True),
            "open": bars["open"].astype("float64"),
            "high": bars["high"].astype("float64"),
            "low": bars["low"].astype("float64"),
            "close": bars["close"].astype("float64"),
            "volume": pd.to_numeric(bars["volume"]).astype("float64"),
        }
    ).reset_index(drop=True)


class PublishedBars:
    """What ingest last published per symbol, interval and session, so a schedule that
    refetches the whole day every minute publishes only the bars that are new or changed
    since, and any other session (an earlier one, a backfill) can still be published.

    Kept per (symbol, interval, New York session date): the newest bar's start and a
    fingerprint of its values (the newest bar may still be forming, so it may change). Bars
    of that session older than it are not republished, even if the source revised them: the
    warehouse keeps the first fetch of those. Stored in SQLite under
    ``STOCKPIPE_HOME/ingest/`` (a backfill of decades of daily bars for hundreds of symbols
    is millions of entries; concurrent runs, such as a backfill beside the minute schedule,
    take turns through its lock). Losing the file only means one fetch is republished in
    full, which the drain absorbs without duplicates.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60)
        # WAL: readers do not wait for a writer, and a commit is one append (NORMAL sync
        # is durable across a process crash; a power loss may lose the last commit, which
        # only republishes bars the drain then ignores).
        self._db.execute("pragma journal_mode = wal")
        self._db.execute("pragma synchronous = normal")
        with self._db:
            # Integers throughout: session = days since 1970, last_ts = microseconds since
            # 1970 (UTC), fingerprint = a 64-bit hash of the bar's values.
            self._db.execute(
                "create table if not exists published (symbol text not null, "
                "bar_interval text not null, session integer not null, "
                "last_ts integer not null, fingerprint integer not null, "
                "primary key (symbol, bar_interval, session)) without rowid"
            )
        self._import_json(path.with_suffix(".json"))

    def _import_json(self, legacy: Path) -> None:
        """Take over the JSON file ingest kept before 2026-12 (1-minute bars only)."""
        if not legacy.exists():
            return
        try:
            stored = {k: tuple(v) for k, v in json.loads(legacy.read_text()).items()}
        except (ValueError, TypeError):
            log.warning("ignoring unreadable ingest state %s; republishing once", legacy)
            stored = {}
        if stored:
            # Keyed by the symbol alone at first, then by symbol|session; the fingerprint
            # was "open|high|low|close|volume".
            frame = pd.DataFrame(
                [
                    (key.partition("|")[0], ts, *fingerprint.split("|"))
                    for key, (ts, fingerprint) in stored.items()
                ],
                columns=["symbol", "ts", "open", "high", "low", "close", "volume"],
            )
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
            self.remember(bar_keys(_normalised(frame)), "1m")
        legacy.replace(legacy.with_suffix(".json.imported"))

    def _stored(self, keyed: pd.DataFrame, interval: str) -> pd.DataFrame:
        """The stored entries of ``keyed``'s symbols in the sessions its bars span."""
        first, last = int(keyed["session"].min()), int(keyed["session"].max())
        symbols = keyed["symbol"].unique().tolist()
        columns: list[list] = [[], [], [], []]
        # One query per few hundred symbols (SQLite's bound-variable limit), not per symbol.
        for i in range(0, len(symbols), 500):
            chunk = symbols[i : i + 500]
            placeholders = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                "select symbol, session, last_ts, fingerprint from published "  # noqa: S608 - placeholders only
                "where bar_interval = ? and session between ? and ? "
                f"and symbol in ({placeholders})",
                (interval, first, last, *chunk),
            ).fetchall()
            if rows:
                for column, values in zip(columns, zip(*rows, strict=True), strict=True):
                    column.extend(values)
        return pd.DataFrame(
            {
                "symbol": np.array(columns[0], dtype=object),
                "session": np.array(columns[1], dtype="int64"),
                "stored_ts": np.array(columns[2], dtype="int64"),
                "stored_fingerprint": np.array(columns[3], dtype="int64"),
            }
        )

    def new_or_changed(self, keyed: pd.DataFrame, interval: str) -> np.ndarray:
        """A mask of the bars ``keyed`` (:func:`bar_keys`) describes: those to publish."""
        merged = keyed.merge(self._stored(keyed, interval), on=["symbol", "session"], how="left")
        stored_ts = merged["stored_ts"]
        fresh = (
            stored_ts.isna()
            | (merged["ts_us"] > stored_ts)
            | (
                (merged["ts_us"] == stored_ts)
                & (merged["fingerprint"] != merged["stored_fingerprint"])
            )
        )
        return fresh.to_numpy()

    def newest_of_session(self, interval: str, session: date) -> dict[str, datetime]:
        """The start of the newest bar published per symbol in the New York ``session``."""
        rows = self._db.execute(
            "select symbol, last_ts from published where bar_interval = ? and session = ?",
            (interval, (session - date(1970, 1, 1)).days),
        ).fetchall()
        return {
            symbol: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=last_ts)
            for symbol, last_ts in rows
        }

    def remember(self, keyed: pd.DataFrame, interval: str) -> None:
        """Record the bars ``keyed`` (:func:`bar_keys`) describes as published (call only
        after every delivery was confirmed)."""
        if keyed.empty:
            return
        # In key order: SQLite's B-tree takes sorted rows about twice as fast.
        newest = keyed.loc[keyed.groupby(["symbol", "session"], sort=True)["ts_us"].idxmax()]
        rows = zip(
            newest["symbol"].tolist(),
            [interval] * len(newest),
            newest["session"].tolist(),
            newest["ts_us"].tolist(),
            newest["fingerprint"].tolist(),
            strict=True,
        )
        # An entry only moves forward: a bar older than the stored newest one leaves it.
        with self._db:
            self._db.executemany(
                "insert into published values (?, ?, ?, ?, ?) "
                "on conflict (symbol, bar_interval, session) do update set "
                "last_ts = excluded.last_ts, fingerprint = excluded.fingerprint "
                "where excluded.last_ts >= published.last_ts",
                rows,
            )

    def close(self) -> None:
        self._db.close()


def bar_keys(bars: pd.DataFrame) -> pd.DataFrame:
    """symbol, session (New York date, days since 1970), ts_us, fingerprint of each bar."""
    local = bars["ts"].dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()
    values = bars[["open", "high", "low", "close", "volume"]]
    return pd.DataFrame(
        {
            "symbol": bars["symbol"].to_numpy(),
            "session": (local.to_numpy().astype("datetime64[D]").astype("int64")),
            "ts_us": bars["ts"]
            .dt.tz_convert("UTC")
            .dt.tz_localize(None)
            .to_numpy()
            .astype("datetime64[us]")
            .astype("int64"),
            "fingerprint": pd.util.hash_pandas_object(values, index=False).to_numpy().view("int64"),
        }
    )


def published_bars(settings: Settings) -> PublishedBars:
    return PublishedBars(settings.home_dir / "ingest" / "published.sqlite")


# Messages built and handed to the producer at a time: bounds the memory of a long backfill
# window (about 250 bytes a message).
PUBLISH_SLICE = 100_000


def publish_quotes(
    settings: Settings, check: QuoteCheck, producer: QuoteProducer | None = None
) -> PublishReport:
    """Publish the new or changed ones of the checked bars to the prices topic, and
    remember them.

    Args:
        producer: an open producer (a backfill's or a live run's, for all its publishes);
            a new one when None.

    Raises:
        PublishError: when any message was not acknowledged (the slices acknowledged before
            stay remembered; the rest is published again next time).
    """
    report = PublishReport()
    if check.refused:
        producer = producer or QuoteProducer(settings.kafka)
        producer.publish_raw(
            (bar.dead_letter() for bar in check.refused), topic=settings.kafka.dlq_topic
        )
        report.dead_lettered = len(check.refused)
    if check.bars.empty:
        return report
    state = published_bars(settings)
    try:
        keyed = bar_keys(check.bars)
        fresh = state.new_or_changed(keyed, check.interval)
        report.skipped_unchanged = len(check.bars) - int(fresh.sum())
        if not fresh.any():
            return report
        bars, keyed = check.bars[fresh], keyed[fresh]
        producer = producer or QuoteProducer(settings.kafka)
        for start in range(0, len(bars), PUBLISH_SLICE):
            part = slice(start, start + PUBLISH_SLICE)
            report.published += producer.publish_values(check.messages(bars.iloc[part]))
            state.remember(keyed.iloc[part], check.interval)
    finally:
        state.close()
    return report


def ingest_window(
    settings: Settings,
    start: datetime,
    end: datetime,
    symbols: list[str] | None = None,
    source: QuoteSource | None = None,
    interval: Interval = "1m",
    producer: QuoteProducer | None = None,
) -> IngestReport:
    """Fetch, check and publish one window of ``interval`` bars: the ingest stage, as the
    CLI's ingest, the ingest flow (one task) and each window of a backfill run it.

    Args:
        producer: an open producer (a backfill's, for all its windows); when None, one is
            made here, which checks the broker answers before the source is asked.
    """
    source = source or make_source(settings.source, settings.home_dir / "sources")
    producer = producer or QuoteProducer(settings.kafka)  # raises KafkaUnreachable
    symbols = symbols or settings.source.watchlist
    bars = fetch_bars(source, symbols, start, end, interval)
    check = check_bars(bars, source.name, interval=interval)
    report = publish_quotes(settings, check, producer)
    return IngestReport(
        start=start,
        end=end,
        source=source.name,
        fetched=len(bars),
        published=report.published,
        unchanged=report.skipped_unchanged,
        rejected=dict(check.rejected),
        symbols_with_bars=frozenset(bars["symbol"].unique()),
        unfetched=tuple(getattr(source, "unfetched", ())),
        without_bars=tuple(getattr(source, "missing", ())),
    )
