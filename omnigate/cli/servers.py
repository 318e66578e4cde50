"""The servers `serve` runs the gateway under: hypercorn (the default, with HTTP/2) or uvicorn (an extra)."""

from __future__ import annotations

import importlib.util
import math
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

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


def run_hypercorn(options: ServeOptions) -> int:
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
    config.include_server_header = False  # names the software to scanners; h11 validates every header
    config.errorlog = "-"
    with multiprocess_directory(options.workers):  # so /metrics on any worker counts every worker
        if options.reload:
            return int(run(config))
        if options.workers == 1:
            config.workers = 0  # hypercorn's "serve in this process": no idle parent, its own signal handling
            return int(run(config))
        return _supervise_hypercorn(config)


def _supervise_hypercorn(config: Any) -> int:
    """hypercorn's workers, stopped together: each drains its own requests before the server exits.

    hypercorn's own supervisor terminates the remaining workers as soon as the first one has exited,
    and its workers die on SIGTERM: a worker still streaming lost the stream and its unwritten usage.
    Here SIGTERM or SIGINT to the server, SIGTERM to any worker, or a worker exiting sets one shared
    event every worker drains on, and the server waits for all of them.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    sockets = config.create_sockets()
    workers = [
        context.Process(target=_hypercorn_worker, kwargs={"config": config, "sockets": sockets, "stop": stop})
        for _ in range(config.workers)
    ]
    signalled: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):  # only recorded here: the event's lock is not reentrant
        signal.signal(signum, lambda signum, frame: signalled.append(signum))
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        ended = wait([worker.sentinel for worker in workers], timeout=0.2)
        if (signalled or ended) and not stop.is_set():
            stop.set()
    return 0 if all(worker.exitcode == 0 for worker in workers) else 1


class _WorkerStop:
    """What a hypercorn worker drains on: the server's shared event, or a SIGTERM sent to this worker."""

    def __init__(self, shared: Any) -> None:
        self.shared = shared
        self.signalled = False

    def is_set(self) -> bool:
        return self.signalled or bool(self.shared.is_set())


def _hypercorn_worker(config: Any, sockets: Any, stop: Any) -> None:
    from hypercorn.asyncio.run import uvloop_worker

    worker_stop = _WorkerStop(stop)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        worker_stop.signalled = True

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches every process; the server decides
    signal.signal(signal.SIGTERM, on_sigterm)
    uvloop_worker(config, sockets, worker_stop)  # type: ignore[arg-type]


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


def run_uvicorn(options: ServeOptions) -> int:
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
            server_header=False,  # as under hypercorn: the server software is not announced
            proxy_headers=False,  # as under hypercorn: the peer is the client, forwarded headers are data
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=math.ceil(options.graceful_timeout_s),
        )
    return 0


def _exit_after_graceful_stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


RUNNERS: dict[str, Callable[[ServeOptions], int]] = {"hypercorn": run_hypercorn, "uvicorn": run_uvicorn}
SERVERS = tuple(RUNNERS)
