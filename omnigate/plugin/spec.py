"""Every hook omnigate calls, with its contract. No hook is ever called per request or per chunk."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omnigate.plugin import hookspec

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from omnigate.observe import RequestOutcome
    from omnigate.plugin.registry import CommandRegistry, PolicyRegistry, ProviderRegistry
    from omnigate.settings import Settings
    from omnigate.types import ASGIApp


@hookspec
def omnigate_register_providers(registry: ProviderRegistry, settings: Settings) -> None:
    """Register upstream providers.

    :param registry: call ``registry.add(name, factory, model_prefixes=(...))``; ``factory(context)``
        is called once per app start-up and returns an object implementing
        :class:`omnigate.plugin.interfaces.Provider`. ``model_prefixes`` route bare model names
        (``"gpt-"`` routes ``gpt-4o``); ``"<name>/<model>"`` always selects the provider explicitly.
    :param settings: the gateway's settings.
    :returns: nothing; registration happens through ``registry``.

    Runs once, at app build time (cold path). Async implementations are not allowed.
    """


@hookspec
def omnigate_register_policies(registry: PolicyRegistry, settings: Settings) -> None:
    """Register call policies (retry, circuit breaker, cache, budget, rate limit, ...).

    :param registry: call ``registry.add(name, factory, before=None, after=None)``. ``factory(context)``
        runs once at start-up and returns an async callable ``policy(call, call_next)`` or ``None``
        (the policy is disabled by its settings). Built-in names keep the documented order
        (``registry.DEFAULT_ORDER``); ``before``/``after`` insert a policy next to a named one.
    :param settings: the gateway's settings.
    :returns: nothing.

    Runs once, at app build time; the pipeline is composed from the result so no hook runs per request.
    """


@hookspec
def omnigate_register_commands(registry: CommandRegistry) -> None:
    """Add sub-commands to the ``omnigate-gateway`` CLI.

    :param registry: call ``registry.add(name, help, configure, run)``. ``configure(parser)`` adds
        arguments (or nested sub-parsers) to an ``argparse`` parser; ``run(args, context)`` executes
        the command and returns an exit code (``None`` means 0); it may be a coroutine function.
    :returns: nothing.

    Runs once when the CLI starts (no app, no database is opened for it).
    """


@hookspec
def omnigate_asgi_wrapper(settings: Settings) -> Callable[[ASGIApp], ASGIApp] | None:
    """Wrap the application in a pure-ASGI middleware.

    :param settings: the gateway's settings.
    :returns: ``factory(app) -> app`` applied once when the app is built, inside authentication (the
        principal is already in ``scope["omnigate.principal"]``), or ``None``.

    Runs once, at app build time. The returned middleware does run per request: keep it cheap and
    never use ``BaseHTTPMiddleware``.
    """


@hookspec
def omnigate_startup(app: Starlette) -> Awaitable[None] | None:
    """Run code when the app starts, after the database and shared state are open.

    :param app: the Starlette app; ``app.state.runtime`` holds the gateway's services.
    :returns: ``None`` or an awaitable, which is awaited before the app serves.

    Runs once per process start (lifespan startup).
    """


@hookspec
def omnigate_shutdown(app: Starlette) -> Awaitable[None] | None:
    """Run code when the app stops, before the database and shared state are closed.

    :param app: the Starlette app.
    :returns: ``None`` or an awaitable, which is awaited.

    Runs once per process stop (lifespan shutdown), after in-flight requests have finished.
    """


@hookspec
def omnigate_migration_dirs() -> Sequence[str | Path] | None:
    """Contribute extra yoyo migration directories for tables a plugin owns.

    :returns: directories applied after omnigate's own migrations by ``omnigate-gateway db upgrade``.

    Runs when the ``db`` command runs (cold path).
    """


@hookspec
def omnigate_request_observer(settings: Settings) -> Callable[[RequestOutcome], None] | None:
    """Observe finished requests (exporters, audit, custom metrics).

    :param settings: the gateway's settings.
    :returns: a plain callable, or ``None``. It is collected once at app build time and called
        directly (not through pluggy) once per finished request with a
        :class:`omnigate.observe.RequestOutcome`, after the response has been sent. It must not block
        and must not raise; an exception is logged and swallowed.
    """
