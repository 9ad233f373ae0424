"""The live tier run in a thread, for tests that watch what its snapshot shows."""

from __future__ import annotations

import threading

from stockpipe.live.store import LiveStore, LiveTierReport
from stockpipe.settings import Settings


class Running:
    """A live tier in a thread, until stopped; waits for what its snapshot shows."""

    def __init__(self, settings: Settings):
        self.changed = threading.Condition()
        self.live = LiveStore(settings, on_refresh=lambda _: self._notify())
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def _run(self) -> None:
        try:
            self.live.run()
        except BaseException as exc:  # surfaced in the test's thread
            self.error = exc
        finally:
            self._notify()

    def showing(self, bars: int) -> None:
        """Until the snapshot holds ``bars`` bars of the session (observed, not timed)."""
        last = lambda: self.live.report.last  # noqa: E731
        with self.changed:
            self.changed.wait_for(
                lambda: (
                    not self.thread.is_alive()
                    or (last() is not None and last().rows["minute_bars"] >= bars)
                ),
                timeout=300,
            )
        if self.error is not None:
            raise self.error
        assert self.thread.is_alive() and last().rows["minute_bars"] >= bars

    def stop(self) -> LiveTierReport:
        self.live.stop()
        self.thread.join(60)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.live.report
