"""Built-in command `serve`: runs the gateway under hypercorn (default) or uvicorn, with graceful shutdown."""

from __future__ import annotations

import argparse

from omnigate import hookimpl
from omnigate.cli import CliError
from omnigate.plugin.registry import CommandContext, CommandRegistry


def configure(parser: argparse.ArgumentParser) -> None:
    from omnigate.cli.servers import SERVERS

    parser.add_argument("--host", help="interface to bind (default HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default PORT or 8080)")
    parser.add_argument("--workers", type=int, help="worker processes (default WORKERS or 1)")
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default=SERVERS[0],
        help="hypercorn (default; HTTP/1.1 and HTTP/2) or uvicorn (HTTP/1.1, httptools; "
        "needs omnigate[uvicorn])",
    )
    parser.add_argument(
        "--reload", action="store_true", help="restart when source files change (development)"
    )


def run(args: argparse.Namespace, context: CommandContext) -> int:
    import asyncio

    from omnigate.app import UnmigratedDatabaseError, prepare_database
    from omnigate.cli.servers import RUNNERS, ServeOptions, require

    require(args.server)
    settings = context.settings
    try:
        asyncio.run(prepare_database(settings))  # once, before any worker starts
    except UnmigratedDatabaseError as exc:
        raise CliError(str(exc)) from None
    options = ServeOptions(
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        graceful_timeout_s=settings.graceful_timeout_s,
        reload=bool(args.reload),
    )
    return RUNNERS[args.server](options)


@hookimpl
def omnigate_register_commands(registry: CommandRegistry) -> None:
    registry.add("serve", "run the gateway (hypercorn, or uvicorn)", configure, run)
