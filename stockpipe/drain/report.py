"""What a drain run did: counts, reasons, where it stopped; the summary line users read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC

import pyarrow as pa
import pyarrow.compute as pc

from stockpipe.contracts import describe_reasons
from stockpipe.drain.dead_letters import Rejection
from stockpipe.drain.loader import LoadResult
from stockpipe.streaming.consumer import TopicPartition


@dataclass
class DrainReport:
    batches: int = 0
    messages: int = 0
    inserted: int = 0
    replaced: int = 0
    rejected: Counter = field(default_factory=Counter)
    fenced_partitions: set = field(default_factory=set)
    reset: dict[TopicPartition, int] = field(default_factory=dict)
    raw_files: list[str] = field(default_factory=list)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    newest_bar: float = 0.0  # Unix time of the newest bar committed
    stopped_because: str = ""
    seconds: float = 0.0
    backlog: int = 0  # messages waiting when the run started
    # The signal that stopped the run (KeyboardInterrupt or processes.Terminated); what it
    # reports is what was committed before it.
    interrupted: KeyboardInterrupt | None = None

    def add(
        self, messages: int, rows: pa.Table, rejections: list[Rejection], result: LoadResult
    ) -> None:
        """Count one committed batch of ``messages``: ``rows`` loaded, ``rejections``
        dead-lettered."""
        self.batches += 1
        self.messages += messages
        self.inserted += result.inserted
        self.replaced += result.replaced
        self.rejected.update(r.reason for r in rejections)
        self.fenced_partitions |= set(result.fenced)
        if rows.num_rows:
            newest = pc.max(rows["TS"]).as_py().replace(tzinfo=UTC).timestamp()
            self.newest_bar = max(self.newest_bar, newest)
        self.next_offsets.update(result.committed_offsets)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        text = (
            f"drained {self.messages} messages in {self.batches} batches ({self.seconds:.1f}s): "
            f"{self.inserted} new bars, {self.replaced} re-fetched bars updated, "
            f"{self.rejected_total} to the dead-letter topic"
        )
        text += describe_reasons(self.rejected)
        if self.fenced_partitions:
            text += (
                f"; skipped partitions loaded by another drain: {sorted(self.fenced_partitions)}"
            )
        if self.reset:
            text += f"; offsets reset to {self.reset}"
        return text + f"; stopped: {self.stopped_because}"
