"""A provider plan's call budget: a minute's calls are waited for, a day's are spent."""

from __future__ import annotations

from pathlib import Path

from stockpipe.sources.budget import CallBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_past_the_minutes_budget_it_waits_for_the_oldest_call_to_age_out() -> None:
    clock = FakeClock()
    budget = CallBudget(per_minute=5, clock=clock, sleep=clock.sleep)
    for second in range(5):
        clock.now = 1_000_000.0 + second * 2
        assert budget.acquire()
    assert clock.slept == []
    assert budget.acquire()  # the sixth: waits until the first call is 60 s old
    assert clock.slept == [52.0]
    assert clock.now == 1_000_060.0


def test_the_days_budget_is_spent_not_waited_for_and_is_shared_through_the_file(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    state = tmp_path / "calls.json"
    first = CallBudget(per_minute=100, per_day=3, state=state, clock=clock, sleep=clock.sleep)
    assert [first.acquire() for _ in range(4)] == [True, True, True, False]
    other_process = CallBudget(per_minute=100, per_day=3, state=state, clock=clock)
    assert other_process.remaining_today() == 0 and not other_process.acquire()
    clock.now += 86_400  # a day later the calls have aged out
    assert other_process.remaining_today() == 3 and other_process.acquire()


def test_a_provider_saying_the_day_is_spent_spends_it(tmp_path: Path) -> None:
    budget = CallBudget(per_minute=5, per_day=25, state=tmp_path / "calls.json")
    assert budget.acquire()
    budget.spend_day()
    assert budget.remaining_today() == 0 and not budget.acquire()


def test_an_unreadable_state_file_starts_counting_again(tmp_path: Path) -> None:
    state = tmp_path / "calls.json"
    state.write_text("{not json")
    assert CallBudget(per_minute=5, per_day=2, state=state).acquire()
    assert CallBudget(per_minute=5, per_day=2, state=state).remaining_today() == 1
