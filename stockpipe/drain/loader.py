"""Load a batch of bars and the offsets that follow it in one warehouse transaction.

Bulk, never row by row: the batch is staged as a table of the session (embedded: DuckDB
reads the Arrow table in place; Snowflake: a bulk-loaded temporary table), then one
transaction replaces older fetches of the same bars, inserts new bars and moves the
offsets. Either all of it commits or none of it does, which is what makes the drain
exactly-once: the offsets in ``RAW.KAFKA_OFFSETS`` never pass rows that are not in
``RAW.STOCK_PRICES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from stockpipe.drain.offsets import TopicPartition, fenced_partitions, write_offsets
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.raw_schema import RAW_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

BATCH_TABLE = "STOCK_PRICES_BATCH"

# Within the batch, the latest fetch of a bar wins (Snowflake's MERGE would raise on
# duplicate source keys; deduplicating first makes both warehouses behave alike).
_LATEST_IN_BATCH = f"""
    select * from {BATCH_TABLE}
    qualify row_number() over (
        partition by symbol, ts, bar_interval order by fetched_at desc, kafka_offset desc
    ) = 1
"""

# DELETE + INSERT rather than MERGE: the embedded warehouse runs MERGE through a temporary
# table of its own, which DuckDB refuses inside a transaction that wrote elsewhere.
_REPLACE_OLDER_FETCHES = f"""
    delete from RAW.STOCK_PRICES using ({_LATEST_IN_BATCH}) as s
    where s.kafka_partition in ({{partitions}})
      and RAW.STOCK_PRICES.ts between %s and %s
      and RAW.STOCK_PRICES.symbol = s.symbol
      and RAW.STOCK_PRICES.ts = s.ts
      and RAW.STOCK_PRICES.bar_interval = s.bar_interval
      and RAW.STOCK_PRICES.fetched_at <= s.fetched_at
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
) -> LoadResult:
    """Commit ``rows`` (columns :data:`RAW_COLUMNS`) and ``next_offsets`` atomically.

    Args:
        rows: the bars, an Arrow table (the drain's) or a pandas frame.
        next_offsets: per partition, where to resume after this batch. May name partitions
            with no rows (a batch of only rejected messages still moves its offsets).
        start_offsets: per partition, the batch's first offset; a partition whose stored
            offset is already past it is fenced (see
            :func:`stockpipe.drain.offsets.fenced_partitions`).
    """
    rows = _arrow(rows)
    with _staged(warehouse, rows) as ts_range, warehouse.transaction():
        fenced = fenced_partitions(warehouse, start_offsets or {})
        committed = {tp: o for tp, o in next_offsets.items() if tp not in fenced}
        replaced, inserted = _merge_bars(warehouse, sorted({p for _, p in committed}), ts_range)
        write_offsets(warehouse, committed, cluster_id)
    return LoadResult(
        rows_in_batch=len(rows),
        inserted=inserted,
        replaced=replaced,
        fenced=fenced,
        committed_offsets=committed,
    )


def refusal(warehouse: Warehouse, rows: pa.Table) -> Exception | None:
    """The error the warehouse raises for the data of ``rows``, or None if it takes them.

    Runs the statements :func:`load_batch` runs on ``rows`` and rolls them back: nothing is
    written. Errors that are not about the data (connection, lock, SQL) propagate.
    """
    partitions = sorted(set(rows["KAFKA_PARTITION"].to_pylist()))
    try:
        with _staged(warehouse, rows) as ts_range:
            warehouse.run("begin")
            try:
                _merge_bars(warehouse, partitions, ts_range)
            finally:
                warehouse.run("rollback")
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


@contextmanager
def _staged(warehouse: Warehouse, rows: pa.Table) -> Iterator[tuple | None]:
    """``rows`` staged as :data:`BATCH_TABLE` in the block; yields the batch's (min, max) ts.

    The time range lets the warehouse prune to the micro-partitions (DuckDB: row groups)
    that can hold the batch's bars, instead of scanning the whole table.
    """
    if not len(rows):
        yield None
        return
    with warehouse.staged(rows.select(list(RAW_COLUMNS)), BATCH_TABLE, like="RAW.STOCK_PRICES"):
        yield warehouse.select(f"select min(ts), max(ts) from {BATCH_TABLE}")[0]


def _merge_bars(
    warehouse: Warehouse, partitions: list[int], ts_range: tuple | None
) -> tuple[int, int]:
    """(replaced, inserted) bars of the staged batch's ``partitions`` (in the transaction)."""
    if ts_range is None or not partitions:
        return 0, 0
    in_list = ", ".join(str(int(p)) for p in partitions)
    replaced = warehouse.dml(_REPLACE_OLDER_FETCHES.format(partitions=in_list), ts_range)
    written = warehouse.dml(_INSERT_NEW_BARS.format(partitions=in_list), ts_range)
    return replaced, written - replaced
