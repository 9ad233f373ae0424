"""Load a batch of bars and the offsets that follow it in one warehouse transaction.

Bulk, never row by row: the batch is staged for the session (embedded: DuckDB reads the
Arrow table in place; Snowflake: PUT + COPY into the set-up's batch table, before and
outside the transaction), then one transaction claims the offsets, replaces older fetches
of the same bars and inserts new bars. Either all of it commits or none of it does, which
is what makes the drain exactly-once: the offsets in ``RAW.KAFKA_OFFSETS`` never pass
rows that are not in ``RAW.STOCK_PRICES``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from stockpipe.drain.offsets import TopicPartition, claim_offsets
from stockpipe.warehouse import Portable, Staged, Warehouse
from stockpipe.warehouse.raw_schema import RAW_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

# Where a batch waits between its bulk load and the transaction, on Snowflake (set up by
# sql/012_raw_stock_prices_batch.sql); the embedded warehouse reads the batch in place.
BATCH_TABLE = "RAW.STOCK_PRICES_BATCH"

# Within the batch, the latest fetch of a bar wins (Snowflake's MERGE would raise on
# duplicate source keys; deduplicating first makes both warehouses behave alike).
_LATEST_IN_BATCH = """
    select * from {batch}
    qualify row_number() over (
        partition by symbol, ts, bar_interval order by fetched_at desc, kafka_offset desc
    ) = 1
"""

# DELETE + INSERT rather than MERGE: the embedded warehouse runs MERGE through a temporary
# table of its own, which DuckDB refuses inside a transaction that wrote elsewhere. Only a
# strictly newer fetch replaces a bar: a re-delivery of the same fetch (a retried batch, a
# reset to the earliest offsets) leaves the stored row alone, so Snowflake rewrites no
# micro-partition for it.
_REPLACE_OLDER_FETCHES = f"""
    delete from RAW.STOCK_PRICES using ({_LATEST_IN_BATCH}) as s
    where s.kafka_partition in ({{partitions}})
      and RAW.STOCK_PRICES.ts between %s and %s
      and RAW.STOCK_PRICES.symbol = s.symbol
      and RAW.STOCK_PRICES.ts = s.ts
      and RAW.STOCK_PRICES.bar_interval = s.bar_interval
      and RAW.STOCK_PRICES.fetched_at < s.fetched_at
"""

# An anti-join written as LEFT JOIN ... IS NULL rather than NOT EXISTS: DuckDB then builds
# its hash table on the batch and streams the table past it. With NOT EXISTS it built on
# the table's rows in the batch's time range, which ran out of memory (64 MB limit) once a
# batch spanned a wide range of a table of millions of rows.
_INSERT_NEW_BARS = f"""
    insert into RAW.STOCK_PRICES ({", ".join(RAW_COLUMNS)})
    select {", ".join("s." + c for c in RAW_COLUMNS)}
    from ({_LATEST_IN_BATCH}) as s
    left join RAW.STOCK_PRICES as t
      on t.ts between %s and %s
     and t.symbol = s.symbol and t.ts = s.ts and t.bar_interval = s.bar_interval
    where s.kafka_partition in ({{partitions}})
      and t.symbol is null
"""

# What the batch touched, for the trend build (sql/setup/013_raw_load_log.sql): one entry
# per symbol, in the same transaction as the bars, so no commit can be missed by it.
_LOG_LOAD = """
    insert into RAW.LOAD_LOG (load_id, symbol, first_ts, last_ts, bar_count, logged_at)
    select %s, symbol, min(ts), max(ts), count(*), %s
    from {batch}
    where kafka_partition in ({partitions})
    group by symbol
"""


@dataclass(frozen=True)
class LoadResult:
    rows_in_batch: int
    inserted: int
    replaced: int
    # Partitions another drain had already loaded past this batch's start: their rows
    # and offsets were left alone. Value: the warehouse's next offset for them.
    fenced: dict[TopicPartition, int] = field(default_factory=dict)
    # The next offsets this commit wrote: the batch's, less the fenced partitions'.
    committed_offsets: dict[TopicPartition, int] = field(default_factory=dict)


def load_batch(
    warehouse: Warehouse,
    rows: pa.Table | pd.DataFrame,
    next_offsets: dict[TopicPartition, int],
    cluster_id: str | None,
    start_offsets: dict[TopicPartition, int] | None = None,
    on_claimed: Callable[[], None] | None = None,
) -> LoadResult:
    """Commit ``rows`` (columns :data:`RAW_COLUMNS`) and ``next_offsets`` atomically.

    Args:
        rows: the bars, an Arrow table (the drain's) or a pandas frame.
        next_offsets: per partition, where to resume after this batch. May name partitions
            with no rows (a batch of only rejected messages still moves its offsets).
        start_offsets: per partition, the batch's first offset; a partition whose stored
            offset is already past it is fenced (see
            :func:`stockpipe.drain.offsets.claim_offsets`).
        on_claimed: called in the transaction once the offsets are claimed (crash and race
            tests stop the drain there, holding the claim's lock).
    """
    rows = _arrow(rows)
    with _staged(warehouse, rows) as batch, warehouse.transaction():
        # The offsets first: claiming them takes the lock that orders this commit against
        # another drain's for the same partitions (see claim_offsets).
        fenced = claim_offsets(warehouse, next_offsets, start_offsets or {}, cluster_id)
        if on_claimed is not None:
            on_claimed()
        committed = {tp: o for tp, o in next_offsets.items() if tp not in fenced}
        replaced, inserted = _merge_bars(warehouse, sorted({p for _, p in committed}), batch)
    return LoadResult(
        rows_in_batch=len(rows),
        inserted=inserted,
        replaced=replaced,
        fenced=fenced,
        committed_offsets=committed,
    )


def merge_rows(warehouse: Warehouse, rows: pa.Table) -> LoadResult:
    """Apply ``rows`` as a drain's batch would, without moving any offset (a backfill).

    The same staging and merge as :func:`load_batch`: new bars are inserted, strictly newer
    fetches replace stored bars, everything else is left alone.
    """
    with _staged(warehouse, rows) as batch, warehouse.transaction():
        replaced, inserted = _merge_bars(warehouse, _partitions(rows), batch)
    return LoadResult(rows_in_batch=len(rows), inserted=inserted, replaced=replaced)


def delete_bars(
    warehouse: Warehouse,
    symbol: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Delete ``symbol``'s bars with ``since <= ts < until`` (naive UTC; None: no bound)
    from RAW; the count.

    The deletion is logged in ``RAW.LOAD_LOG`` in the same transaction, with the first and
    last bar it removed, so the next trend build takes those sessions out of the marts too.
    """
    where = "symbol = %s" + (" and ts >= %s" if since else "") + (" and ts < %s" if until else "")
    params = (symbol, *(bound for bound in (since, until) if bound))
    with warehouse.transaction():
        # A bar a drain commits between these two statements is removed too; its range is
        # in the drain's own load-log entry, so the marts follow either way.
        first, last = warehouse.query(
            Portable(f"select min(ts), max(ts) from RAW.STOCK_PRICES where {where}"), params
        )[0]
        deleted = warehouse.execute(
            Portable(f"delete from RAW.STOCK_PRICES where {where}"), params
        ).rowcount
        if deleted:
            warehouse.execute(
                Portable(
                    "insert into RAW.LOAD_LOG "
                    "(load_id, symbol, first_ts, last_ts, bar_count, logged_at) "
                    "values (%s, %s, %s, %s, %s, %s)"
                ),
                (uuid.uuid4().hex, symbol, first, last, deleted, _utc_now()),
            )
    return deleted


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def refusal(warehouse: Warehouse, rows: pa.Table) -> Exception | None:
    """The error the warehouse raises for the data of ``rows``, or None if it takes them.

    Runs the statements :func:`load_batch` runs on ``rows`` and rolls them back: nothing is
    written. Errors that are not about the data (connection, lock, SQL) propagate.
    """
    try:
        with _staged(warehouse, rows) as batch:
            warehouse.execute(Portable("begin"))
            try:
                _merge_bars(warehouse, _partitions(rows), batch)
            finally:
                warehouse.execute(Portable("rollback"))
    except Exception as exc:
        if warehouse.is_data_error(exc):
            return exc
        raise
    return None


def refused_rows(
    warehouse: Warehouse, rows: pa.Table, error: Exception
) -> list[tuple[int, Exception]]:
    """The rows of ``rows`` that the warehouse refuses, found by halving.

    ``rows`` as a whole was refused with ``error``. Each half is tried (and rolled back,
    see :func:`refusal`); a refused half is halved again down to single rows. Costs about
    two tries per refused row per halving: ~30 for one bad row in 20,000.

    Returns:
        (index in ``rows``, the warehouse's error for that row alone) of each refused row;
        empty when no part is refused on its own.
    """

    def search(start: int, stop: int, error: Exception) -> list[tuple[int, Exception]]:
        if stop - start == 1:
            return [(start, error)]
        middle = (start + stop) // 2
        found = []
        for first, last in ((start, middle), (middle, stop)):
            part_error = refusal(warehouse, rows.slice(first, last - first))
            if part_error is not None:
                found += search(first, last, part_error)
        return found

    return search(0, rows.num_rows, error) if rows.num_rows else []


def _arrow(rows: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    return pa.Table.from_pandas(rows, preserve_index=False)  # tests, benchmarks


def _partitions(rows: pa.Table) -> list[int]:
    """The Kafka partitions ``rows`` come from, in order."""
    return sorted(set(rows["KAFKA_PARTITION"].to_pylist()))


@dataclass(frozen=True)
class _StagedBatch:
    staged: Staged
    first_ts: object
    last_ts: object


@contextmanager
def _staged(warehouse: Warehouse, rows: pa.Table) -> Iterator[_StagedBatch | None]:
    """``rows`` staged for the block's statements, with the batch's first and last ts.

    The time range lets the warehouse prune to the micro-partitions (DuckDB: row groups)
    that can hold the batch's bars, instead of scanning the whole table.
    """
    if not len(rows):
        yield None
        return
    with warehouse.staged(rows.select(list(RAW_COLUMNS)), BATCH_TABLE) as staged:
        first, last = warehouse.query(
            Portable(f"select min(ts), max(ts) from {staged.relation} as b"), staged.params
        )[0]
        yield _StagedBatch(staged, first, last)


def _merge_bars(
    warehouse: Warehouse, partitions: list[int], batch: _StagedBatch | None
) -> tuple[int, int]:
    """(replaced, inserted) bars of the staged batch's ``partitions`` (in the transaction)."""
    if batch is None or not partitions:
        return 0, 0
    in_list = ", ".join(str(int(p)) for p in partitions)
    params = (*batch.staged.params, batch.first_ts, batch.last_ts)
    replaced = warehouse.execute(
        Portable(_REPLACE_OLDER_FETCHES.format(partitions=in_list, batch=batch.staged.relation)),
        params,
    ).rowcount
    written = warehouse.execute(
        Portable(_INSERT_NEW_BARS.format(partitions=in_list, batch=batch.staged.relation)),
        params,
    ).rowcount
    if written:  # a re-delivery that changed nothing leaves the marts nothing to do
        warehouse.execute(
            Portable(_LOG_LOAD.format(partitions=in_list, batch=batch.staged.relation)),
            (uuid.uuid4().hex, _utc_now(), *batch.staged.params),
        )
    return replaced, written - replaced
