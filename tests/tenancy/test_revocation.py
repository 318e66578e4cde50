"""AT-6: a revoked key stops at once where it was revoked, and within the documented bound everywhere else."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import httpx

from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import create_tenant
from tests.conftest import SECRET_KEY, gateway_env, truncate_postgres
from tests.test_cli import cli

# How long a delivered pub/sub message may take in the tests (it is milliseconds in practice).
PUBSUB_SLACK_S = 2.0


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def refused_within(client: httpx.AsyncClient, key: str, limit_s: float) -> float:
    """Seconds until ``client``'s gateway refuses ``key`` (polling); fails past ``limit_s``."""
    started = time.monotonic()
    while True:
        status = (await client.get("/v1/me", headers=bearer(key))).status_code
        elapsed = time.monotonic() - started
        if status == 401:
            return elapsed
        assert status == 200
        assert elapsed < limit_s, f"key still accepted after {elapsed:.2f}s"
        await asyncio.sleep(0.05)


def production_env(postgres_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    truncate_postgres(postgres_url)
    return gateway_env(
        {
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url,
            "OMNIGATE_SECRET_KEY": SECRET_KEY,
            "OMNIGATE_STATE_PREFIX": f"test:{uuid.uuid4().hex[:8]}:",
        },
        **extra,
    )


async def test_revocation_reaches_another_instance_through_redis(postgres_url: str, redis_url: str) -> None:
    # A long cache TTL: only the pub/sub message can make instance B refuse the key this quickly.
    env = production_env(postgres_url, redis_url, KEY_CACHE_TTL_S="60")
    async with run_gateway(env) as a, run_gateway(env) as b:
        tenant = await create_tenant(a)
        victim = (await a.post("/v1/keys/api", json={"name": "victim"}, headers=tenant.headers)).json()
        assert (await b.get("/v1/me", headers=bearer(victim["key"]))).status_code == 200  # cached in B
        revoked = await a.delete(f"/v1/keys/api/{victim['id']}", headers=tenant.headers)
        assert revoked.status_code == 200
        assert (await a.get("/v1/me", headers=bearer(victim["key"]))).status_code == 401  # at once in A
        await refused_within(b, victim["key"], PUBSUB_SLACK_S)
        # The other keys of the project are untouched in both instances.
        assert (await b.get("/v1/me", headers=tenant.headers)).status_code == 200


async def test_cli_revocation_reaches_running_gateways_through_redis(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = production_env(postgres_url, redis_url, KEY_CACHE_TTL_S="60")
    async with run_gateway(env) as gateway:
        tenant = await create_tenant(gateway)
        key_id = (await gateway.get("/v1/me", headers=tenant.headers)).json()["key_id"]
        cli_env = {k: v for k, v in env.items() if k != "ADMIN_API_KEY"}
        result = await asyncio.to_thread(cli, tmp_path, "key", "revoke", key_id, "--json", env=cli_env)
        assert '"revoked_at"' in result.stdout and "warning" not in result.stderr
        await refused_within(gateway, tenant.key, PUBSUB_SLACK_S)


async def test_without_a_message_the_cache_ttl_bounds_revocation(tmp_path: Path) -> None:
    # Two embedded instances on one SQLite file, each with its own in-process state: no message
    # reaches B, so B refuses the key once its cached principal expires (KEY_CACHE_TTL_S).
    ttl_s = 1.0
    env = gateway_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}"}, KEY_CACHE_TTL_S=str(ttl_s))
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(run_gateway(env))
        b = await stack.enter_async_context(run_gateway(env))
        tenant = await create_tenant(a)
        victim = (await a.post("/v1/keys/api", json={"name": "victim"}, headers=tenant.headers)).json()
        assert (await b.get("/v1/me", headers=bearer(victim["key"]))).status_code == 200
        assert (await a.delete(f"/v1/keys/api/{victim['id']}", headers=tenant.headers)).status_code == 200
        assert (await a.get("/v1/me", headers=bearer(victim["key"]))).status_code == 401
        await refused_within(b, victim["key"], ttl_s + 0.5)
