"""One async query API over SQLite (one held connection) and PostgreSQL (asyncpg pool) via `databases`."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiosqlite
import databases
import databases.core
from sqlalchemy import text
from sqlalchemy.engine.default import DefaultDialect

Dialect = Literal["sqlite", "postgresql"]
Values = Mapping[str, Any] | None

# busy_timeout first: the others may have to wait for another process (e.g. a second worker starting).
_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
_SQLITE_JOURNAL_MODE = "PRAGMA journal_mode"
_SQLITE_WAL = "PRAGMA journal_mode=WAL"
_WAL_SWITCH_WAIT_S = 30.0
_PING = "SELECT 1"


async def _ensure_wal(held: databases.core.Connection) -> None:
    """Put the file in WAL mode, once.

    WAL is a property of the file: only the first connection ever switches it, so workers starting
    together do not all take the exclusive lock the switch needs. Two that both find a new file in
    the old mode race for that lock, and the loser can get "database is locked" at once, busy timeout
    or not: it waits and looks again, until the winner has switched the file (or the time is up).
    """
    deadline = time.monotonic() + _WAL_SWITCH_WAIT_S
    while str(await held.fetch_val(_SQLITE_JOURNAL_MODE)).lower() != "wal":
        try:
            await held.execute(_SQLITE_WAL)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.05)


class Queryable(Protocol):
    """What store functions need: the query methods, on a `Database` or inside a transaction."""

    @property
    def dialect(self) -> Dialect: ...

    async def fetch_all(self, query: str, values: Values = None) -> list[dict[str, Any]]: ...

    async def fetch_one(self, query: str, values: Values = None) -> dict[str, Any] | None: ...

    async def fetch_val(self, query: str, values: Values = None) -> Any: ...

    async def execute(self, query: str, values: Values = None) -> None: ...

    async def execute_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Queryable]: ...


def parse_database_url(url: str) -> tuple[Dialect, str, Path | None]:
    """Return (dialect, the URL `databases` wants, the SQLite file path or None)."""
    parts = urlsplit(url)
    base = parts.scheme.split("+", 1)[0].lower()
    rest = url.split("://", 1)[1] if "://" in url else ""
    if base == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ValueError("SQLite URL needs a file path, e.g. sqlite:///./omnigate.db")
        file_path = None if path == ":memory:" else Path(path)
        return "sqlite", "sqlite+aiosqlite://" + rest, file_path
    if base in ("postgresql", "postgres"):
        return "postgresql", "postgresql://" + rest, None
    raise ValueError(f"unsupported database URL scheme {parts.scheme!r} (use sqlite:/// or postgresql://)")


@functools.lru_cache(maxsize=256)
def _positional(query: str, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """Compile a `:name` query to the driver's positional form, with the parameter order."""
    sa_dialect = (
        DefaultDialect(paramstyle="numeric_dollar")
        if dialect == "postgresql"
        else DefaultDialect(paramstyle="qmark")
    )
    compiled = text(query).compile(dialect=sa_dialect)
    return compiled.string, tuple(compiled.positiontup or ())


async def _keep_session(connection: object) -> None:
    """The pool's reset when a connection comes back: nothing beyond asyncpg's own rollback of an open
    transaction. The store keeps no session state on pooled connections (no SET outside SET LOCAL, no
    LISTEN, cursors or advisory locks), so the default reset query would cost a round trip per use."""


def _rows(records: Sequence[Any]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in records]


class _SqliteScopes:
    """BEGIN/SAVEPOINT scopes on the one held aiosqlite connection, undone whichever await is cancelled.

    aiosqlite runs statements in order on its own thread, so a statement whose await was cancelled still
    runs, and an undo queued after it runs after it: a cancelled BEGIN is always followed by a ROLLBACK.
    """

    __slots__ = ("_raw", "_depth")

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self._raw = raw
        self._depth = 0

    async def _run(self, sql: str) -> None:
        async with self._raw.execute(sql):
            pass

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[None]:
        depth = self._depth
        savepoint = f"omnigate_savepoint_{depth}"
        self._depth = depth + 1
        try:
            try:
                await self._run("BEGIN" if depth == 0 else f"SAVEPOINT {savepoint}")
                yield
                await self._run("COMMIT" if depth == 0 else f"RELEASE SAVEPOINT {savepoint}")
            except BaseException:
                await self._undo(depth, savepoint)
                raise
        finally:
            self._depth = depth

    async def _undo(self, depth: int, savepoint: str) -> None:
        """Roll the scope back if it is open (its BEGIN may have failed, or its COMMIT succeeded)."""
        if depth == 0:
            try:
                await self._run("ROLLBACK")
            except sqlite3.OperationalError:
                if self._raw.in_transaction:
                    raise
            return
        try:
            await self._run(f"ROLLBACK TO SAVEPOINT {savepoint}")
        except sqlite3.OperationalError:
            return  # no such savepoint: it never opened or was already released
        await self._run(f"RELEASE SAVEPOINT {savepoint}")


class Transaction:
    """Query methods bound to one connection, inside an open transaction (or for one statement)."""

    __slots__ = ("_conn", "_dialect", "_sqlite_scopes")

    def __init__(
        self, conn: databases.core.Connection, dialect: Dialect, sqlite_scopes: _SqliteScopes | None = None
    ) -> None:
        self._conn = conn
        self._dialect = dialect
        self._sqlite_scopes = sqlite_scopes

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    async def fetch_all(self, query: str, values: Values = None) -> list[dict[str, Any]]:
        return _rows(await self._conn.fetch_all(query, dict(values) if values is not None else None))

    async def fetch_one(self, query: str, values: Values = None) -> dict[str, Any] | None:
        record = await self._conn.fetch_one(query, dict(values) if values is not None else None)
        return None if record is None else dict(record._mapping)

    async def fetch_val(self, query: str, values: Values = None) -> Any:
        return await self._conn.fetch_val(query, dict(values) if values is not None else None)

    async def execute(self, query: str, values: Values = None) -> None:
        await self._conn.execute(query, dict(values) if values is not None else None)

    async def execute_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """One driver-level executemany (not a statement per row through SQLAlchemy)."""
        if not rows:
            return
        sql, order = _positional(query, self._dialect)
        args = [tuple(row[name] for name in order) for row in rows]
        await self._conn.raw_connection.executemany(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A nested transaction (savepoint) on the same connection."""
        async with self._scope():
            yield self

    @asynccontextmanager
    async def _scope(self) -> AsyncIterator[None]:
        # Not `databases`' Transaction: a cancellation during its BEGIN leaves the transaction open and the
        # connection checked out. asyncpg's own transaction nests as savepoints, and a connection released
        # mid-transaction is rolled back by the pool's reset.
        if self._sqlite_scopes is not None:
            async with self._sqlite_scopes.scope():
                yield
            return
        async with self._conn.raw_connection.transaction():
            yield


class Database:
    """The store's database handle: `connect()` once at start-up, `disconnect()` at shutdown."""

    def __init__(self, url: str, **options: Any) -> None:
        self._url = url
        self._dialect, driver_url, self._sqlite_path = parse_database_url(url)
        if self._dialect == "sqlite":
            options.setdefault("timeout", 30.0)
        else:
            options.setdefault("reset", _keep_session)
        self._db = databases.Database(driver_url, **options)
        self._held: databases.core.Connection | None = None
        self._scopes: _SqliteScopes | None = None
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    @property
    def url(self) -> str:
        """The URL this handle was made from (it may hold a password: never log it)."""
        return self._url

    @property
    def is_connected(self) -> bool:
        return bool(self._db.is_connected)

    async def connect(self) -> None:
        if self._db.is_connected:
            return
        if self._sqlite_path is not None:
            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        await self._db.connect()
        if self._dialect == "sqlite":
            held = self._db.connection()
            await held.__aenter__()
            try:
                for pragma in _SQLITE_PRAGMAS:
                    await held.execute(pragma)
                await _ensure_wal(held)
            except BaseException:
                await held.__aexit__(None, None, None)
                await self._db.disconnect()
                raise
            self._held = held
            self._scopes = _SqliteScopes(held.raw_connection)

    async def disconnect(self) -> None:
        if self._held is not None:
            async with self._lock:
                held, self._held, self._scopes = self._held, None, None
                await held.__aexit__(None, None, None)
        await self._db.disconnect()

    @asynccontextmanager
    async def _sqlite(self) -> AsyncIterator[Transaction]:
        """Exclusive use of the one SQLite connection; re-entrant for the task that holds it."""
        if self._held is None:
            raise RuntimeError("Database is not connected")
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            yield Transaction(self._held, "sqlite", self._scopes)
            return
        async with self._lock:
            if self._held is None:
                raise RuntimeError("Database is not connected")
            self._owner = task
            try:
                yield Transaction(self._held, "sqlite", self._scopes)
            finally:
                self._owner = None

    async def fetch_all(self, query: str, values: Values = None) -> list[dict[str, Any]]:
        if self._dialect == "sqlite":
            async with self._sqlite() as conn:
                return await conn.fetch_all(query, values)
        return _rows(await self._db.fetch_all(query, dict(values) if values is not None else None))

    async def fetch_one(self, query: str, values: Values = None) -> dict[str, Any] | None:
        if self._dialect == "sqlite":
            async with self._sqlite() as conn:
                return await conn.fetch_one(query, values)
        record = await self._db.fetch_one(query, dict(values) if values is not None else None)
        return None if record is None else dict(record._mapping)

    async def fetch_val(self, query: str, values: Values = None) -> Any:
        if self._dialect == "sqlite":
            async with self._sqlite() as conn:
                return await conn.fetch_val(query, values)
        return await self._db.fetch_val(query, dict(values) if values is not None else None)

    async def execute(self, query: str, values: Values = None) -> None:
        if self._dialect == "sqlite":
            async with self._sqlite() as conn:
                await conn.execute(query, values)
            return
        await self._db.execute(query, dict(values) if values is not None else None)

    async def execute_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run `query` once per row, all in one transaction (one driver executemany)."""
        if not rows:
            return
        if len(rows) == 1 and self._dialect == "postgresql":  # one statement: atomic without BEGIN/COMMIT
            conn = self._db.connection()
            async with conn:
                await Transaction(conn, "postgresql").execute_many(query, rows)
            return
        async with self.transaction() as tx:
            await tx.execute_many(query, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Commit on success, roll back on exception. Use the yielded object; never gather inside."""
        if self._dialect == "sqlite":
            async with self._sqlite() as held, held.transaction():
                yield held
            return
        conn = self._db.connection()
        async with conn:
            tx = Transaction(conn, "postgresql")
            async with tx.transaction():
                yield tx

    async def ping(self, timeout_s: float = 5.0) -> None:
        """Raise if the database cannot answer a trivial query within `timeout_s` seconds."""
        async with asyncio.timeout(timeout_s):
            await self.fetch_val(_PING)
