"""Fixtures: the two backends (embedded SQLite + memory, production PostgreSQL + Redis) and app clients."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import psycopg
import pytest

from omnigate.settings import Settings, parse_settings
from omnigate.store import migrate
from omnigate.testing.pytest_plugin import run_gateway

ADMIN_KEY = "admin-test-key-0123456789"
SECRET_KEY = "4Wc0P0n0y3lq0m0ZCqJ6kV3x1mYx2QeZ9fJ8G7h6K5Q="
POSTGRES_ADMIN_URL = os.environ.get(
    "OMNIGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OMNIGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("OMNIGATE_TEST_REQUIRE_SERVICES") == "1"
TENANT_TABLES = ("usage_records", "provider_credentials", "api_keys", "projects", "organizations")


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and OMNIGATE_TEST_REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    name = f"omnigate_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        ping_redis(REDIS_URL)
    except OSError as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


def ping_redis(url: str, timeout_s: float = 2.0) -> None:
    parsed = urlparse(url)
    with socket.create_connection(
        (parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=timeout_s
    ) as sock:
        sock.sendall(b"PING\r\n")
        reply = sock.recv(64)
    if not reply.startswith(b"+PONG"):
        raise OSError(f"unexpected reply to PING: {reply!r}")


def truncate_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TENANT_TABLES)} CASCADE")


@pytest.fixture(params=["embedded", "production"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Environment for one backend: SQLite file + memory, or PostgreSQL + Redis (a unique key prefix)."""
    if request.param == "embedded":
        return {"DATABASE_URL": f"sqlite:///{tmp_path / 'omnigate.db'}"}
    pg = request.getfixturevalue("postgres_url")
    redis = request.getfixturevalue("redis_url")
    truncate_postgres(pg)
    return {
        "DATABASE_URL": pg,
        "REDIS_URL": redis,
        "OMNIGATE_SECRET_KEY": SECRET_KEY,
        "OMNIGATE_STATE_PREFIX": f"test:{uuid.uuid4().hex[:8]}:",
    }


@pytest.fixture
def embedded(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'omnigate.db'}"}


def gateway_env(env: dict[str, str], **overrides: str) -> dict[str, str]:
    base = {"ADMIN_API_KEY": ADMIN_KEY, "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1", "LOG_LEVEL": "WARNING"}
    return {**base, **env, **overrides}


def make_settings(env: dict[str, str], **overrides: str) -> Settings:
    return parse_settings(gateway_env(env, **overrides))


ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(backend: dict[str, str]) -> AsyncIterator[ClientFactory]:
    """``await make_client(plugins=[...], **ENV)`` → an httpx client on a started app for this backend."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(plugins: list[tuple[str, Any]] | None = None, **env: str) -> httpx.AsyncClient:
            return await stack.enter_async_context(run_gateway(gateway_env(backend, **env), plugins or ()))

        yield factory


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()


def admin_headers() -> dict[str, str]:
    return {"x-admin-key": ADMIN_KEY}
