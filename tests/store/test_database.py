"""Database: URL handling, SQLite connection setup, query methods, transactions, ping."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from omnigate.store.database import Database, parse_database_url
from omnigate.store.tenants import create_org, get_org, list_orgs

INSERT_ORG_RAW = """
INSERT INTO organizations (id, name, daily_budget_micros, monthly_budget_micros, created_at, updated_at)
VALUES (:id, :name, :daily, NULL, :t, :t)
"""
COUNT_ORGS = "SELECT COUNT(*) FROM organizations"


def test_parse_database_url() -> None:
    assert parse_database_url("sqlite:///./data/x.db") == (
        "sqlite",
        "sqlite+aiosqlite:///./data/x.db",
        Path("data/x.db"),
    )
    assert parse_database_url("sqlite:////abs/x.db")[2] == Path("/abs/x.db")
    assert parse_database_url("postgres://u:p@h:5/d")[:2] == ("postgresql", "postgresql://u:p@h:5/d")
    assert parse_database_url("postgresql+asyncpg://h/d")[:2] == ("postgresql", "postgresql://h/d")
    with pytest.raises(ValueError, match="unsupported"):
        parse_database_url("mysql://h/d")
    with pytest.raises(ValueError, match="file path"):
        parse_database_url("sqlite://")


async def test_sqlite_creates_directory_and_keeps_pragmas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/a/b/c.db")
    assert db.dialect == "sqlite"
    await db.connect()
    try:
        assert (tmp_path / "a" / "b" / "c.db").exists()
        # Several separate calls: the pragmas must hold on all of them (one held connection).
        for _ in range(2):
            assert await db.fetch_val("PRAGMA foreign_keys") == 1
            assert await db.fetch_val("PRAGMA journal_mode") == "wal"
            assert await db.fetch_val("PRAGMA busy_timeout") == 30000
            assert await db.fetch_val("PRAGMA synchronous") == 1  # NORMAL
        await db.ping()
    finally:
        await db.disconnect()
    with pytest.raises(RuntimeError, match="not connected"):
        await db.fetch_val("SELECT 1")


async def test_unreachable_postgres_raises() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/nope")
    assert db.dialect == "postgresql"
    with pytest.raises(OSError):
        await db.connect()


async def test_query_methods_return_plain_dicts(db: Database) -> None:
    org = await create_org(db, "acme", daily_budget_micros=5_000_000)
    rows = await db.fetch_all("SELECT id, name, daily_budget_micros FROM organizations")
    assert rows == [{"id": org.id, "name": "acme", "daily_budget_micros": 5_000_000}]
    assert type(rows[0]) is dict
    one = await db.fetch_one("SELECT name FROM organizations WHERE id = :id", {"id": org.id})
    assert one == {"name": "acme"}
    assert await db.fetch_one("SELECT name FROM organizations WHERE id = :id", {"id": "nope"}) is None
    assert await db.fetch_val(COUNT_ORGS) == 1
    await db.ping()


async def test_transaction_commits_and_rolls_back(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute(INSERT_ORG_RAW, {"id": "org_a", "name": "a", "daily": None, "t": 1})
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as tx:
            await tx.execute(INSERT_ORG_RAW, {"id": "org_b", "name": "b", "daily": None, "t": 1})
            assert await tx.fetch_val(COUNT_ORGS) == 2
            raise RuntimeError("boom")
    assert [o.id for o in await list_orgs(db)] == ["org_a"]


async def test_nested_transaction_is_a_savepoint(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute(INSERT_ORG_RAW, {"id": "org_outer", "name": "o", "daily": None, "t": 1})
        with pytest.raises(RuntimeError):
            async with tx.transaction() as inner:
                await inner.execute(INSERT_ORG_RAW, {"id": "org_inner", "name": "i", "daily": None, "t": 2})
                raise RuntimeError
        # The task holding the transaction may also use the Database itself (same connection).
        assert await db.fetch_val(COUNT_ORGS) == 1
    assert await get_org(db, "org_outer") is not None
    assert await get_org(db, "org_inner") is None


async def test_execute_many(db: Database) -> None:
    rows = [{"id": f"org_{i}", "name": f"n{i}", "daily": i * 10, "t": i} for i in range(50)]
    await db.execute_many(INSERT_ORG_RAW, rows)
    await db.execute_many(INSERT_ORG_RAW, [])
    assert await db.fetch_val(COUNT_ORGS) == 50
    org = await get_org(db, "org_7")
    assert org is not None and org.daily_budget_micros == 70 and org.created_at == org.updated_at == 7


async def test_execute_many_is_atomic(db: Database) -> None:
    rows = [{"id": "org_dup", "name": "x", "daily": None, "t": 1}] * 2
    with pytest.raises(Exception):  # noqa: B017 - the driver's own unique-violation class
        await db.execute_many(INSERT_ORG_RAW, rows)
    assert await db.fetch_val(COUNT_ORGS) == 0


async def test_concurrent_use_from_many_tasks(db: Database) -> None:
    async def writer(i: int) -> None:
        async with db.transaction() as tx:
            await tx.execute(INSERT_ORG_RAW, {"id": f"org_{i}", "name": "n", "daily": None, "t": i})
            await asyncio.sleep(0)
            await tx.fetch_val(COUNT_ORGS)

    await asyncio.gather(*(writer(i) for i in range(20)), *(db.fetch_val(COUNT_ORGS) for _ in range(20)))
    assert await db.fetch_val(COUNT_ORGS) == 20


async def test_cancelled_transaction_leaves_no_transaction_open(db: Database) -> None:
    """Cancel a transaction at every await from BEGIN to COMMIT: nothing stays open, no connection leaks."""
    steps = 0
    for steps in range(40):
        entered = asyncio.Event()

        async def write(i: int, entered: asyncio.Event) -> None:
            async with db.transaction() as tx:
                entered.set()
                await tx.execute(INSERT_ORG_RAW, {"id": f"org_c{i}", "name": "c", "daily": None, "t": i})

        task = asyncio.create_task(write(steps, entered))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task])
        # Each write outside a transaction must be durable at once, whatever the cancelled task left.
        await db.execute(INSERT_ORG_RAW, {"id": f"org_after{steps}", "name": "a", "daily": None, "t": 0})
        if entered.is_set() and task.cancelled() and steps > 20:
            break
    # PostgreSQL's pool holds 4 connections: a leaked one per cancellation would exhaust it.
    async with asyncio.timeout(10):
        for i in range(8):
            async with db.transaction() as tx:
                await tx.execute(INSERT_ORG_RAW, {"id": f"org_t{i}", "name": "t", "daily": None, "t": i})
    other = Database(db.url)
    await other.connect()
    try:
        durable = await other.fetch_val("SELECT COUNT(*) FROM organizations WHERE name = :n", {"n": "a"})
    finally:
        await other.disconnect()
    assert durable == steps + 1
