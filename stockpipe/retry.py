"""Bounded retries with exponential backoff and full jitter, for calls to a flaky world.

Prefect tasks get their own retries (``retries``/``retry_delay_seconds``/
``retry_jitter_factor``); this helper is for the library, which must also behave when run
without Prefect (the CLI), and for retrying one call inside a task.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delays(
    max_retries: int, base: float, cap: float, rng: random.Random | None = None
) -> list[float]:
    """The sleep before each retry: ``uniform(0, min(cap, base * 2**attempt))`` ("full jitter")."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    return [rng.uniform(0, min(cap, base * 2**attempt)) for attempt in range(max_retries)]


def retry_call(
    fn: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool],
    max_retries: int,
    base_seconds: float = 1.0,
    max_seconds: float = 60.0,
    what: str = "call",
    sleep: Callable[[float], None] = time.sleep,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """Call ``fn``; on an exception in ``retry_on`` wait and try again, at most ``max_retries``.

    Args:
        retry_on: the exception classes worth retrying, or a predicate on the exception.
        before_retry: called after the wait, before each retry (e.g. to reconnect).

    Returns:
        what ``fn`` returns.

    Raises:
        The last exception once the retries are used up; anything outside ``retry_on`` at once.
    """
    delays = backoff_delays(max_retries, base_seconds, max_seconds)
    for attempt in range(max_retries + 1):
        try:
            return fn()
        except Exception as exc:
            worth_it = retry_on(exc) if callable(retry_on) else isinstance(exc, retry_on)
            if not worth_it or attempt == max_retries:
                raise
            delay = delays[attempt]
            log.warning(
                "%s failed (%s: %s); retry %d/%d in %.1fs",
                what,
                type(exc).__name__,
                exc,
                attempt + 1,
                max_retries,
                delay,
            )
            sleep(delay)
            if before_retry is not None:
                before_retry()
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class RetryPolicy:
    """How a source retries a call to its provider (``STOCKPIPE_SOURCE__MAX_RETRIES`` and
    the backoff settings); ``sleep`` is replaceable so that tests do not wait."""

    max_retries: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def call(
        self,
        fn: Callable[[], T],
        retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool],
        what: str,
    ) -> T:
        """:func:`retry_call` with this policy."""
        return retry_call(
            fn,
            retry_on=retry_on,
            max_retries=self.max_retries,
            base_seconds=self.base_seconds,
            max_seconds=self.max_seconds,
            what=what,
            sleep=self.sleep,
        )
