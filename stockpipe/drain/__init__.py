"""The drain: Kafka -> warehouse, in batches, exactly once.

    pipeline     the drain loop and its sink: decode, dead-letter, file, commit
    decoding     messages -> warehouse rows, with the contract's verdicts
    dead_letters the dead-letter topic and its reason codes
    loader       one batch's rows and offsets in one warehouse transaction
    offsets      where to resume: read, check against the cluster, reset, fence, lag
    raw_zone     each batch's accepted rows as immutable Parquet files
    report       what a run did

Arrows point one way: drain -> streaming | warehouse.
"""

from stockpipe.drain.offsets import OffsetsOutOfSync
from stockpipe.drain.pipeline import NoPartitionsAssigned, drain_prices, run_drain
from stockpipe.drain.report import DrainReport

__all__ = [
    "DrainReport",
    "NoPartitionsAssigned",
    "OffsetsOutOfSync",
    "drain_prices",
    "run_drain",
]
