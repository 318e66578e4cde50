"""Health, readiness and version; the lifespan's start-up checks; the embedded secret key file."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from omnigate import __version__
from omnigate.testing.pytest_plugin import run_gateway
from tests.conftest import POSTGRES_ADMIN_URL, SECRET_KEY, ClientFactory, gateway_env


async def test_live_ready_version(client: httpx.AsyncClient, backend: dict[str, str]) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    expected = {"database": "ok", "redis": "ok"} if "REDIS_URL" in backend else {"database": "ok"}
    assert ready.json() == {"status": "ready", "checks": expected}
    assert (await client.get("/version")).json()["version"] == __version__


async def test_ready_names_redis_when_it_is_down(embedded: dict[str, str]) -> None:
    async with run_gateway(gateway_env(embedded, REDIS_URL="redis://127.0.0.1:1/0")) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        error = ready.json()["error"]
        assert (
            error["code"] == "not_ready"
            and "redis" in error["message"]
            and "database" not in error["message"]
        )
        assert (await client.get("/health/live")).status_code == 200


async def test_production_refuses_an_unmigrated_database(postgres_url: str) -> None:
    name = f"omnigate_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        with pytest.raises(RuntimeError, match="db upgrade"):
            async with run_gateway(gateway_env({"DATABASE_URL": url, "OMNIGATE_SECRET_KEY": SECRET_KEY})):
                pass
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_embedded_mode_creates_its_secret_key_file_once(tmp_path: Path) -> None:
    env = gateway_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'gw.db'}"})
    async with run_gateway(env) as client:
        assert (await client.get("/health/ready")).status_code == 200
    key_file = tmp_path / "data" / "gw.db.secret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_bytes()
    async with run_gateway(env):
        pass
    assert key_file.read_bytes() == first


async def test_head_and_unknown_methods(make_client: ClientFactory) -> None:
    client = await make_client()
    assert (await client.head("/health/live")).status_code == 200
    assert (await client.post("/health/live")).status_code == 405
