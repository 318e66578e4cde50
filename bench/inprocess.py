"""The app's own CPU instructions per request, without an HTTP server: the ASGI app driven in process.

python -m bench.inprocess                                  # JSON, the bench's project, PostgreSQL + Redis
python -m bench.inprocess --project bare                   # a project without limits or budgets
python -m bench.inprocess --state memory --stream          # the in-process shared state; streams
python -m bench.inprocess --floor                          # the Starlette floor app, the same driver

Splits what `bench.instructions` counts for a whole server into the app's share (the rest is the HTTP
server). The driver runs twice under valgrind (warm-up only; warm-up plus ``--requests``), as
`bench.instructions` does; the fake upstream, PostgreSQL and Redis are other processes, not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from bench import run
from bench.instructions import INSTRUCTIONS
from bench.loadgen import JSON_BODY, STREAM_BODY
from bench.procs import ROOT, free_port, python, started, wait_port

VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


def build_app(floor: bool) -> Any:
    if floor:
        from bench import floors

        floors.UPSTREAM = os.environ["OPENAI_BASE_URL"].removesuffix("/v1")
        return floors.starlette_proxy()
    from omnigate.app import create_app
    from omnigate.settings import Settings

    return create_app(Settings.from_env(), server_process=True)


async def drive(app: Any, key: str, stream: bool, requests: int, concurrency: int) -> None:
    """``requests`` requests through the app's ASGI callable, ``concurrency`` at a time; each must be 200."""
    body = STREAM_BODY if stream else JSON_BODY
    headers = [
        (b"host", b"bench"),
        (b"authorization", b"Bearer " + key.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        sent = False
        complete = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await complete.wait()  # the client never leaves; as servers do, a receive ends with the response
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"status {message['status']}")
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete.set()

        async with gate:
            await app(dict(scope), receive, send)

    await asyncio.gather(*(one() for _ in range(requests)))


async def serve_in_process(args: argparse.Namespace) -> None:
    app = build_app(args.floor)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    if (await outbox.get())["type"] != "lifespan.startup.complete":
        raise RuntimeError("the app did not start")
    await drive(app, args.key, args.stream, args.warmup + args.requests, args.concurrency)
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await lifespan


def counted(args: argparse.Namespace, env: dict[str, str], key: str, requests: int, log: Path) -> int:
    command = [*VALGRIND, f"--log-file={log}", python(), "-m", "bench.inprocess", "--drive", "--key", key]
    command += [
        "--requests",
        str(requests),
        "--warmup",
        str(args.warmup),
        "--concurrency",
        str(args.concurrency),
    ]
    command += ["--stream"] * args.stream + ["--floor"] * args.floor
    subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
    match = INSTRUCTIONS.search(log.read_bytes())
    if match is None:
        raise RuntimeError(f"no instruction count in {log}")
    return int(match.group(1).replace(b",", b""))


def provision(env: dict[str, str], bare: bool) -> str:
    if not bare:
        return run.provision(env, production=True)
    upgrade = [python(), "-m", "omnigate", "db", "upgrade"]
    subprocess.run(upgrade, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
    org = run.cli_json(env, "org", "create", "bare")
    return str(run.cli_json(env, "project", "create", "--org", org["id"], "bare")["api_key"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="measured requests")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--project", choices=["limits", "bare"], default="limits")
    parser.add_argument("--state", choices=["redis", "memory"], default="redis")
    parser.add_argument("--floor", action="store_true", help="the Starlette floor app instead of omnigate")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        asyncio.run(serve_in_process(args))
        return
    port = free_port()
    with started([python(), "-m", "bench.upstream", "--port", str(port)]) as upstream_proc:
        wait_port(port, upstream_proc)
        with run.postgres_database() as database:
            extra = {
                "DATABASE_URL": database,
                "OMNIGATE_SECRET_KEY": run.SECRET_KEY,
                "OMNIGATE_STATE_PREFIX": f"bench:{uuid.uuid4().hex[:6]}:",
            }
            if args.state == "redis":
                extra["REDIS_URL"] = run.REDIS_URL
            env = run.omnigate_env(f"http://127.0.0.1:{port}", extra)
            key = "" if args.floor else provision(env, args.project == "bare")
            logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"omnigate-inprocess-{uuid.uuid4().hex[:6]}"
            logs.mkdir(parents=True)
            base, total = (counted(args, env, key, n, logs / f"vg-{n}.log") for n in (0, args.requests))
    what = "floor" if args.floor else f"omnigate, {args.project} project, {args.state} state"
    mode = "stream" if args.stream else "json"
    sys.stdout.write(f"{what}, {mode}: {(total - base) / args.requests:,.0f} instructions per request\n")


if __name__ == "__main__":
    main()
