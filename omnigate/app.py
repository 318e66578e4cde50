"""create_app(): the Starlette app, its pure-ASGI middleware stack and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pluggy
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from omnigate.api import subscribe_invalidations
from omnigate.errors import OmnigateError, error_for_status
from omnigate.gateway.pipeline import instantiate
from omnigate.heap import settle_heap
from omnigate.keyusage import KeyUsageRecorder
from omnigate.logs import configure_logging
from omnigate.metrics import GatewayMetrics
from omnigate.metrics.endpoint import metrics_route
from omnigate.middleware.access_log import AccessLogMiddleware
from omnigate.middleware.auth import AuthMiddleware
from omnigate.middleware.body_limit import BodyLimitMiddleware
from omnigate.middleware.request_id import RequestIdMiddleware
from omnigate.observe import Observer
from omnigate.plugin.interfaces import PluginContext
from omnigate.plugin.manager import await_me_maybe, build_plugin_manager
from omnigate.plugin.registry import PolicyRegistry, ProviderRegistry
from omnigate.pricing import PriceBook
from omnigate.runtime import Runtime
from omnigate.settings import Settings
from omnigate.state import open_state
from omnigate.store import migrate
from omnigate.store.credentials import SecretBox, load_or_create_secret_key
from omnigate.store.database import Database
from omnigate.types import ASGIApp
from omnigate.usage.writer import UsageWriter

logger = logging.getLogger("omnigate.app")


class GatewayApp(Starlette):
    """Starlette with request id and access log outside its error middleware, so 500s carry both."""

    outer_middleware: tuple[Callable[[ASGIApp], ASGIApp], ...] = ()

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for wrap in reversed(self.outer_middleware):
            app = wrap(app)
        return app


def _routes() -> list[BaseRoute]:
    from omnigate import api, identity, models_api, ops
    from omnigate.admin import tenants
    from omnigate.analytics import routes as analytics

    return [
        *ops.routes,
        *identity.routes,
        *models_api.routes,
        *tenants.routes,
        *api.routes(),
        *analytics.routes,
    ]


def _chat_routes(runtime: Runtime) -> list[BaseRoute]:
    from starlette.routing import Route

    from omnigate.gateway.dispatch import ChatEndpoint
    from omnigate.surfaces.native import NativeSurface
    from omnigate.surfaces.openai import OpenAISurface

    return [
        Route("/v1/chat/completions", ChatEndpoint(runtime, OpenAISurface()), methods=["POST"]),
        Route("/v1/chat", ChatEndpoint(runtime, NativeSurface()), methods=["POST"]),
    ]


async def _render_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, OmnigateError):
        error = exc
    elif isinstance(exc, HTTPException):
        error = error_for_status(exc.status_code, _http_message(exc, request))
        error.headers.update(exc.headers or {})
    else:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        error = OmnigateError("the gateway hit an internal error; the request id identifies it in the logs")
    headers = dict(error.headers)
    return Response(
        error.body(), status_code=error.status_code, headers=headers, media_type="application/json"
    )


def _http_message(exc: HTTPException, request: Request) -> str:
    if exc.status_code == 404:
        return f"no route for {request.method} {request.url.path}"
    if exc.status_code == 405:
        return f"method {request.method} is not allowed on {request.url.path}"
    return str(exc.detail)


def create_app(
    settings: Settings, plugin_manager: pluggy.PluginManager | None = None, *, server_process: bool = False
) -> Starlette:
    """Build the gateway app. Plugins are discovered here, once; nothing calls pluggy per request.

    ``server_process``: the app owns its process (``omnigate.asgi``), so start-up may tune the garbage
    collector (`settle_heap`); an app embedded in tests or another program leaves it alone.
    """
    pm = plugin_manager if plugin_manager is not None else build_plugin_manager(settings)
    configure_logging(settings.log_format, settings.log_level)
    metrics = GatewayMetrics(settings)
    observers: tuple[Observer, ...] = (
        *(o for o in pm.hook.omnigate_request_observer(settings=settings) if o is not None),
        metrics.observe,
    )
    provider_registry, policy_registry = ProviderRegistry(), PolicyRegistry()
    pm.hook.omnigate_register_providers(registry=provider_registry, settings=settings)
    pm.hook.omnigate_register_policies(registry=policy_registry, settings=settings)
    runtime = Runtime(
        settings=settings,
        plugin_manager=pm,
        observers=observers,
        provider_registry=provider_registry,
        policy_registry=policy_registry,
        metrics=metrics,
    )
    wrappers = [w for w in pm.hook.omnigate_asgi_wrapper(settings=settings) if w is not None]
    inner = [Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)]
    inner.append(
        Middleware(
            AuthMiddleware,
            resolve_key=runtime.resolve_key,
            admin_key=settings.admin_api_key,
            record_use=runtime.record_key_use,
        )
    )
    inner.extend(Middleware(_PluginWrapper, wrap=wrap) for wrap in wrappers)

    app = GatewayApp(
        # Chat routes first: the router tries routes in order, and they carry nearly all traffic.
        routes=[*_chat_routes(runtime), *_routes(), metrics_route(metrics, settings.metrics_token)],
        middleware=inner,
        exception_handlers={
            Exception: _render_error,
            HTTPException: _render_error,
            OmnigateError: _render_error,
        },
        lifespan=_lifespan(runtime, server_process),
    )
    app.outer_middleware = (
        RequestIdMiddleware,
        lambda inner_app: AccessLogMiddleware(inner_app, observers=observers),
    )
    app.state.runtime = runtime
    metrics.bind(runtime, app.routes)
    return app


class _PluginWrapper:
    """Applies a plugin's ``omnigate_asgi_wrapper`` factory once, at build time."""

    def __init__(self, app: ASGIApp, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
        self.app = wrap(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class UnmigratedDatabaseError(RuntimeError):
    """A production database is behind the code's migrations: the gateway refuses to start on it."""


async def prepare_database(settings: Settings) -> None:
    """Embedded mode migrates itself; production refuses to serve an unmigrated database."""
    if settings.is_embedded_db:
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
        return
    pending = [
        name
        for name, applied in await asyncio.to_thread(migrate.status, settings.database_url)
        if not applied
    ]
    if pending:
        raise UnmigratedDatabaseError(
            f"the database has {len(pending)} unapplied migration(s) ({', '.join(pending)}): "
            "run 'omnigate-gateway db upgrade' first"
        )


def secret_key(settings: Settings) -> bytes:
    """OMNIGATE_SECRET_KEY, or in embedded mode a key file created once beside the SQLite database."""
    sqlite_path = settings.sqlite_path
    key_file = sqlite_path.with_name(sqlite_path.name + ".secret") if sqlite_path else Path("omnigate.secret")
    return load_or_create_secret_key(settings.secret_key, key_file)


def _lifespan(
    runtime: Runtime, server_process: bool
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings = runtime.settings
        await prepare_database(settings)
        db = Database(settings.database_url)
        await db.connect()
        try:
            async with open_state(settings.redis_url, prefix=settings.state_prefix) as state:
                runtime.open(db, state, SecretBox(secret_key(settings)))
                subscribe_invalidations(runtime)
                prices = PriceBook(settings.model_prices_file)
                await asyncio.to_thread(prices.warm)  # ~0.5 s of data loading, never on a request
                context = PluginContext(settings=settings, state=state, db=db, prices=prices)
                plugins = instantiate(runtime.provider_registry, runtime.policy_registry, context)
                writer = UsageWriter(db)
                writer.start()
                key_usage = runtime.key_usage = KeyUsageRecorder(db)
                key_usage.start()
                runtime.start_chat(plugins, prices, writer)
                if runtime.metrics is not None:
                    runtime.metrics.start()
                try:
                    for result in runtime.plugin_manager.hook.omnigate_startup(app=app):
                        await await_me_maybe(result)
                    if server_process:
                        settle_heap(settings.gc_gen0_threshold)
                    yield
                finally:
                    try:
                        for result in runtime.plugin_manager.hook.omnigate_shutdown(app=app):
                            await await_me_maybe(result)
                    finally:
                        await key_usage.aclose()
                        await writer.aclose()
                        for provider in plugins.providers.values():
                            await provider.aclose()
                        if runtime.metrics is not None:
                            await runtime.metrics.aclose()
                        runtime.close()
        finally:
            await db.disconnect()

    return lifespan
