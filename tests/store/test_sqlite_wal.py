"""Workers opening a new SQLite file together: the one that loses the race to switch it to WAL waits."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from omnigate.store import database


class RacingConnection:
    """A connection whose WAL switch fails as locked ``failures`` times, while another worker switches."""

    def __init__(self, failures: int, error: str = "database is locked") -> None:
        self.mode, self.failures, self.error, self.switches = "delete", failures, error, 0

    async def fetch_val(self, query: str) -> Any:
        return self.mode

    async def execute(self, query: str) -> None:
        if self.failures:
            self.failures -= 1
            if self.failures == 0:
                self.mode = "wal"  # the other worker won and switched the file
            raise sqlite3.OperationalError(self.error)
        self.switches += 1
        self.mode = "wal"


async def test_the_loser_of_the_switch_waits_for_the_winner() -> None:
    racing = RacingConnection(failures=3)
    await database._ensure_wal(racing)  # type: ignore[arg-type]
    assert racing.mode == "wal" and racing.switches == 0


async def test_a_file_already_in_wal_is_left_alone_and_a_new_one_is_switched() -> None:
    switched = RacingConnection(failures=0)
    await database._ensure_wal(switched)  # type: ignore[arg-type]
    await database._ensure_wal(switched)  # type: ignore[arg-type]
    assert switched.switches == 1


async def test_other_errors_and_a_lock_that_outlasts_the_wait_still_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        await database._ensure_wal(RacingConnection(failures=1, error="disk I/O error"))  # type: ignore[arg-type]
    monkeypatch.setattr(database, "_WAL_SWITCH_WAIT_S", 0.0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await database._ensure_wal(RacingConnection(failures=5))  # type: ignore[arg-type]
