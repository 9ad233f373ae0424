"""A test that needs something of the machine skips on a developer's machine when it is
missing, and fails under CI, where a skip would look green and prove nothing."""

from __future__ import annotations

import pytest

from tests.conftest import pytest_runtest_setup
from tests.support import prerequisite


class Item:
    """What the hook reads of a collected test: its marks."""

    def __init__(self, *marks: pytest.MarkDecorator):
        self.marks = [m.mark for m in marks]

    def iter_markers(self, name: str):
        return (m for m in self.marks if m.name == name)


def test_a_missing_prerequisite_skips_a_developers_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs chromium"):
        pytest_runtest_setup(Item(prerequisite(True, "needs chromium")))


def test_a_missing_prerequisite_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI is set.*needs chromium"):
        pytest_runtest_setup(Item(prerequisite(True, "needs chromium")))


def test_a_prerequisite_that_is_there_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    pytest_runtest_setup(Item(prerequisite(False, "needs chromium")))
