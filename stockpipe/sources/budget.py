"""A provider plan's call budget: calls per minute (waited for) and per day (spent).

Free plans count calls: Finnhub 60 a minute, Alpha Vantage 5 a minute and 25 a day. A
source asks :meth:`CallBudget.acquire` before each request: within the minute's budget it
returns at once, past it it waits for the oldest call to age out, and once the day's budget
is spent it returns False so that the source reports what it could not fetch instead of
being refused by the provider. The day's calls are kept in a file, shared by every process
of the installation (the minute schedule, a backfill beside it) under a lock.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MINUTE = 60.0
DAY = 86_400.0


class CallBudget:
    """Args:
    per_minute: calls allowed in any 60 s.
    per_day: calls allowed in any 24 h (None: no daily limit).
    state: the file the calls of the last day are kept in (None: this process only).
    clock: seconds since the epoch (tests pass a fake clock with ``sleep``).
    sleep: how to wait for a slot.
    """

    def __init__(
        self,
        per_minute: int,
        per_day: int | None = None,
        state: Path | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.per_minute = per_minute
        self.per_day = per_day
        self.state = state
        self.clock = clock
        self.sleep = sleep
        self._calls: deque[float] = deque()  # when state is None
        self.waited = 0.0

    def acquire(self) -> bool:
        """Take one call from the budget, waiting for the minute's budget if need be.

        Returns:
            False, taking nothing, when the day's budget is spent.
        """
        while True:
            with self._locked_calls() as calls:
                now = self.clock()
                while calls and calls[0] <= now - DAY:
                    calls.popleft()
                if self.per_day is not None and len(calls) >= self.per_day:
                    return False
                in_minute = [t for t in calls if t > now - MINUTE]
                if len(in_minute) < self.per_minute:
                    calls.append(now)
                    return True
                wait = in_minute[-self.per_minute] + MINUTE - now
            self.waited += wait
            self.sleep(max(wait, 0.01))

    def spend_day(self) -> None:
        """The provider says the day's budget is gone (another client shares the key):
        count it spent, so the rest of the run asks no more."""
        if self.per_day is None:
            return
        with self._locked_calls() as calls:
            now = self.clock()
            calls.extend([now] * max(0, self.per_day - len(calls)))

    def remaining_today(self) -> int | None:
        if self.per_day is None:
            return None
        with self._locked_calls() as calls:
            now = self.clock()
            return max(0, self.per_day - sum(1 for t in calls if t > now - DAY))

    @contextmanager
    def _locked_calls(self) -> Iterator[deque[float]]:
        if self.state is None:
            yield self._calls
            return
        self.state.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read()
            try:
                calls = deque(sorted(float(t) for t in json.loads(text or "[]")))
            except (ValueError, TypeError):
                calls = deque()  # unreadable: start counting again
            yield calls
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(list(calls)))
