"""pytest fixtures shipped for plugin authors: an embedded gateway with chosen plugins, driven in-process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
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


@contextlib.asynccontextmanager
async def serve_gateway(
    env: dict[str, str], plugins: Sequence[tuple[str, Any]] = (), server: str = "hypercorn"
) -> AsyncIterator[str]:
    """Serve a gateway on a real loopback socket in this event loop; yields its base URL.

    Use it where the transport matters (streaming time-to-first-byte, client disconnects): in-process
    ASGI transports buffer whole responses. ``server`` is ``"hypercorn"`` or ``"uvicorn"`` (with
    httptools, as ``serve --server uvicorn`` runs it; needs the ``omnigate[uvicorn]`` extra).
    """
    serving = _SERVERS.get(server)
    if serving is None:
        raise ValueError(f"server must be one of {', '.join(_SERVERS)}, not {server!r}")
    settings = parse_settings(env)
    app = create_app(settings, plugin_manager=build_plugin_manager(settings, extra_plugins=plugins))
    port = _free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serving(app, port, stop))
    try:
        await _wait_listening(port, task)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await task


async def _serve_hypercorn(app: Starlette, port: int, stop: asyncio.Event) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 2
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


async def _serve_uvicorn(app: Starlette, port: int, stop: asyncio.Event) -> None:
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError("serve_gateway(server='uvicorn') needs the omnigate[uvicorn] extra") from None

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        ws="none",
        interface="asgi3",
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, stopped], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopped.cancel()
    await serving
    if not server.started:
        raise RuntimeError("uvicorn did not start the gateway (its log says why)")


_SERVERS: dict[str, Callable[[Starlette, int, asyncio.Event], Coroutine[Any, Any, None]]] = {
    "hypercorn": _serve_hypercorn,
    "uvicorn": _serve_uvicorn,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_listening(port: int, server: asyncio.Task[Any], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if server.done():
            server.result()
            raise RuntimeError("the gateway server stopped during start-up")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


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
