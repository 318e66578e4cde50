"""Store test fixtures: a migrated `db` on SQLite and on PostgreSQL, and fresh empty databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from omnigate.store.database import Database
from omnigate.store.migrate import upgrade

BACKENDS = ["sqlite", "postgresql"]
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Small pools: every test connects its own Database.
POOL_OPTIONS = "?min_size=1&max_size=4"

_CLEAR = (
    "DELETE FROM usage_records",
    "DELETE FROM provider_credentials",
    "DELETE FROM api_keys",
    "DELETE FROM projects",
    "DELETE FROM organizations",
)


def admin_url() -> str:
    return os.environ.get("OMNIGATE_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)


def _db_url(name: str) -> str:
    base = admin_url().rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        with psycopg.connect(admin_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        if os.environ.get("OMNIGATE_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL unreachable at {admin_url()}: {exc}")
        return False
    return True


class PgDatabases:
    """Creates uniquely named databases and drops them all at the end of the session."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self) -> str:
        name = f"omnigate_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        return _db_url(name)

    def drop_all(self) -> None:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            for name in self.names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_databases(postgres_available: bool) -> Iterator[PgDatabases]:
    if not postgres_available:
        pytest.skip("PostgreSQL unreachable (set OMNIGATE_TEST_REQUIRE_SERVICES=1 to fail instead)")
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, unmigrated database URL for the backend named by the test's `backend` parameter."""
    backend: str = request.param
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/sub/dir/fresh.db"
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    return dbs.create()


@pytest.fixture(scope="session")
def migrated_urls() -> dict[str, str]:
    """One migrated database per backend for the whole session (created on first use)."""
    return {}


@pytest.fixture(params=[pytest.param(b, marks=pytest.mark.backend) for b in BACKENDS])
async def db(request: pytest.FixtureRequest, migrated_urls: dict[str, str]) -> AsyncIterator[Database]:
    """A connected Database on a migrated schema, emptied before each test."""
    backend: str = request.param
    if backend not in migrated_urls:
        if backend == "sqlite":
            path = request.getfixturevalue("tmp_path_factory").mktemp("store") / "omnigate.db"
            url = f"sqlite:///{path}"
        else:
            url = request.getfixturevalue("pg_databases").create() + POOL_OPTIONS
        upgrade(url)
        migrated_urls[backend] = url
    database = Database(migrated_urls[backend])
    await database.connect()
    try:
        for statement in _CLEAR:
            await database.execute(statement)
        yield database
    finally:
        await database.disconnect()
