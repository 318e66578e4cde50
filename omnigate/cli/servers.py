"""The servers `serve` runs the gateway under: hypercorn (the default, with HTTP/2) or uvicorn (an extra)."""

from __future__ import annotations

import importlib.util
import math
import signal
from collections.abc import Callable
from types import FrameType

import attrs

from omnigate.cli import CliError
from omnigate.metrics.multiprocess import multiprocess_directory

APP = "omnigate.asgi:app"
KEEP_ALIVE_S = 75  # longer than a load balancer's usual 60 s idle timeout, so the balancer closes first
UVICORN_MODULES = ("uvicorn", "uvloop", "httptools")


@attrs.frozen(kw_only=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    graceful_timeout_s: float
    reload: bool


def run_hypercorn(options: ServeOptions) -> None:
    from hypercorn.config import Config
    from hypercorn.run import run

    config = Config()
    config.application_path = APP
    config.bind = [f"{options.host}:{options.port}"]
    config.workers = options.workers
    config.worker_class = "uvloop"
    config.graceful_timeout = options.graceful_timeout_s
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.use_reloader = options.reload
    config.accesslog = None  # omnigate logs each request itself
    config.errorlog = "-"
    with multiprocess_directory(options.workers):  # so /metrics on any worker counts every worker
        run(config)


def require(server: str) -> None:
    """Fail with the install hint before anything starts when the chosen server is not installed."""
    if server != "uvicorn":
        return
    missing = [name for name in UVICORN_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise CliError(
            f"--server uvicorn needs {', '.join(missing)}: install omnigate[uvicorn] "
            "(pip install 'omnigate[uvicorn]')"
        )


def run_uvicorn(options: ServeOptions) -> None:
    import uvicorn

    # uvicorn re-raises the SIGTERM it shut down for once it is done; a finished graceful stop exits 0.
    signal.signal(signal.SIGTERM, _exit_after_graceful_stop)
    with multiprocess_directory(options.workers):
        uvicorn.run(
            APP,
            host=options.host,
            port=options.port,
            workers=options.workers,
            reload=options.reload,
            loop="uvloop",
            http="httptools",
            ws="none",
            interface="asgi3",
            lifespan="on",  # opens the store; its shutdown flushes the usage writer
            access_log=False,  # omnigate logs each request itself
            proxy_headers=False,  # as under hypercorn: the peer is the client, forwarded headers are data
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=math.ceil(options.graceful_timeout_s),
        )


def _exit_after_graceful_stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


RUNNERS: dict[str, Callable[[ServeOptions], None]] = {"hypercorn": run_hypercorn, "uvicorn": run_uvicorn}
SERVERS = tuple(RUNNERS)
