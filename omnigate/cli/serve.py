"""Built-in command `serve`: runs the gateway under hypercorn (uvloop worker, graceful shutdown)."""

from __future__ import annotations

import argparse

from omnigate import hookimpl
from omnigate.plugin.registry import CommandContext, CommandRegistry


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to bind (default HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default PORT or 8080)")
    parser.add_argument("--workers", type=int, help="worker processes (default WORKERS or 1)")
    parser.add_argument(
        "--reload", action="store_true", help="restart when source files change (development)"
    )


def run(args: argparse.Namespace, context: CommandContext) -> int:
    import asyncio

    from hypercorn.config import Config
    from hypercorn.run import run as run_hypercorn

    from omnigate.app import prepare_database
    from omnigate.metrics.multiprocess import multiprocess_directory

    settings = context.settings
    asyncio.run(prepare_database(settings))
    config = Config()
    config.application_path = "omnigate.asgi:app"
    config.bind = [f"{args.host or settings.host}:{args.port or settings.port}"]
    config.workers = args.workers or settings.workers
    config.worker_class = "uvloop"
    config.graceful_timeout = settings.graceful_timeout_s
    config.keep_alive_timeout = 75
    config.use_reloader = bool(args.reload)
    config.accesslog = None
    config.errorlog = "-"
    with multiprocess_directory(config.workers):  # so /metrics on any worker counts every worker
        run_hypercorn(config)
    return 0


@hookimpl
def omnigate_register_commands(registry: CommandRegistry) -> None:
    registry.add("serve", "run the gateway (hypercorn)", configure, run)
