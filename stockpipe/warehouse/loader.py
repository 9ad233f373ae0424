"""Load a batch of bars and the offsets that follow it in one warehouse transaction.

Bulk, never row by row: the batch is staged as a table of the session (embedded: DuckDB
reads the Arrow table in place; Snowflake: a bulk-loaded temporary table), then one
transaction replaces older fetches of the same bars, inserts new bars and moves the
offsets. Either all of it commits or none of it does, which is what makes the drain
exactly-once: the offsets in ``RAW.KAFKA_OFFSETS`` never pass rows that are not in
``RAW.STOCK_PRICES``.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from stockpipe.warehouse import Warehouse

if TYPE_CHECKING:
    import pandas as pd

BATCH_TABLE = "STOCK_PRICES_BATCH"
RAW_COLUMNS = (
    "SYMBOL",
    "TS",
    "BAR_INTERVAL",
    "OPEN",
    "HIGH",
    "LOW",
    "CLOSE",
    "VOLUME",
    "SOURCE",
    "FETCHED_AT",
    "SCHEMA_VERSION",
    "KAFKA_TOPIC",
    "KAFKA_PARTITION",
    "KAFKA_OFFSET",
    "KAFKA_TIMESTAMP",
    "LOADED_AT",
)

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
    fenced: dict[tuple[str, int], int] = field(default_factory=dict)
    # The next offsets this commit wrote: the batch's, less the fenced partitions'.
    committed_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredOffset:
    next_offset: int
    cluster_id: str | None


def read_offsets(warehouse: Warehouse, topic: str) -> dict[tuple[str, int], StoredOffset]:
    """The warehouse's record of where to resume each partition of ``topic``."""
    rows = warehouse.select(
        "select kafka_partition, next_offset, cluster_id from RAW.KAFKA_OFFSETS "
        "where kafka_topic = %s",
        (topic,),
    )
    return {(topic, int(p)): StoredOffset(int(o), c) for p, o, c in rows}


def load_batch(
    warehouse: Warehouse,
    rows: pa.Table | pd.DataFrame,
    next_offsets: dict[tuple[str, int], int],
    cluster_id: str | None,
    start_offsets: dict[tuple[str, int], int] | None = None,
) -> LoadResult:
    """Commit ``rows`` (columns :data:`RAW_COLUMNS`) and ``next_offsets`` atomically.

    Args:
        rows: the bars, an Arrow table (the drain's) or a pandas frame.
        next_offsets: per partition, where to resume after this batch. May name partitions
            with no rows (a batch of only rejected messages still moves its offsets).
        start_offsets: per partition, the batch's first offset; a partition whose stored
            offset is already past it is fenced (see :func:`_fenced_partitions`).
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    if not isinstance(rows, pa.Table):  # a pandas frame (tests, benchmarks)
        rows = pa.Table.from_pandas(rows, preserve_index=False)
    batch = (
        warehouse.staged(rows.select(list(RAW_COLUMNS)), BATCH_TABLE, like="RAW.STOCK_PRICES")
        if len(rows)
        else nullcontext()
    )
    with batch:
        # The batch's time range lets the warehouse prune to the micro-partitions (DuckDB:
        # row groups) that can hold its bars, instead of scanning the whole table.
        ts_range = (
            warehouse.select(f"select min(ts), max(ts) from {BATCH_TABLE}")[0]
            if len(rows)
            else None
        )
        with warehouse.transaction():
            fenced = _fenced_partitions(warehouse, start_offsets or {})
            committed = {tp: o for tp, o in next_offsets.items() if tp not in fenced}
            replaced, inserted = _merge_bars(warehouse, sorted({p for _, p in committed}), ts_range)
            if committed:
                _write_offsets(warehouse, committed, cluster_id, now)
    return LoadResult(
        rows_in_batch=len(rows),
        inserted=inserted,
        replaced=replaced,
        fenced=fenced,
        committed_offsets=committed,
    )


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


def _fenced_partitions(
    warehouse: Warehouse, start_offsets: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """Partitions whose stored offset moved past this batch's start since we read it.

    That happens when a rebalance moved a partition to another drain which loaded it first;
    loading our copy would move its offset backwards. Read inside the transaction.
    """
    fenced = {}
    for topic in {t for t, _ in start_offsets}:
        for tp, stored in read_offsets(warehouse, topic).items():
            start = start_offsets.get(tp)
            if start is not None and stored.next_offset > start:
                fenced[tp] = stored.next_offset
    return fenced


def _write_offsets(
    warehouse: Warehouse,
    next_offsets: dict[tuple[str, int], int],
    cluster_id: str | None,
    now: datetime,
) -> None:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in next_offsets:
        by_topic.setdefault(topic, []).append(partition)
    for topic, partitions in by_topic.items():
        placeholders = ", ".join(["%s"] * len(partitions))
        warehouse.dml(
            "delete from RAW.KAFKA_OFFSETS where kafka_topic = %s "
            f"and kafka_partition in ({placeholders})",
            (topic, *partitions),
        )
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(next_offsets))
    params: list[object] = []
    for (topic, partition), offset in sorted(next_offsets.items()):
        params += [topic, partition, offset, cluster_id, now]
    warehouse.dml(
        "insert into RAW.KAFKA_OFFSETS "
        f"(kafka_topic, kafka_partition, next_offset, cluster_id, updated_at) values {values}",
        params,
    )
