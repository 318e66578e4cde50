"""pytest fixtures shipped for plugin authors: an embedded gateway with chosen plugins, driven in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from omnigate.app import create_app
from omnigate.plugin.manager import build_plugin_manager
from omnigate.settings import parse_settings

OMNIGATE_TEST_ADMIN_KEY = "omnigate-test-admin-key"

GatewayFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@contextlib.asynccontextmanager
async def lifespan_running(app: Starlette) -> AsyncIterator[None]:
    """Run the app's lifespan in its own task, as a server does, until the block exits.

    Setup and teardown of a fixture can run in different tasks; clients such as coredis must be
    entered and exited in one task, so the lifespan gets a task of its own.
    """
    started = asyncio.Event()
    stop = asyncio.Event()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    done, _ = await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()  # start-up failed: raise its error here
    try:
        yield
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def run_gateway(
    env: dict[str, str], plugins: Sequence[tuple[str, Any]] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    """Start a gateway (lifespan included) from ``env`` and yield an httpx client bound to it in-process."""
    settings = parse_settings(env)
    app = create_app(settings, plugin_manager=build_plugin_manager(settings, extra_plugins=plugins))
    async with lifespan_running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://omnigate.test") as client:
            yield client


@pytest.fixture
async def omnigate_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """``await omnigate_gateway(plugins=[(name, plugin)], **ENV)`` → a client on an embedded gateway.

    The gateway runs on a fresh SQLite file with in-process state, entry-point autoload off (pass your
    plugin explicitly, or set ``OMNIGATE_DISABLE_PLUGIN_AUTOLOAD="0"`` to test discovery) and the admin
    key ``OMNIGATE_TEST_ADMIN_KEY``.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def factory(plugins: Sequence[tuple[str, Any]] = (), **env: str) -> httpx.AsyncClient:
            base = {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'omnigate.db'}",
                "ADMIN_API_KEY": OMNIGATE_TEST_ADMIN_KEY,
                "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1",
            }
            return await stack.enter_async_context(run_gateway({**base, **env}, plugins))

        yield factory
