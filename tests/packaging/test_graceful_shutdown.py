"""SIGTERM on a real server process: open streams finish and every worker writes its usage records first."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest

from omnigate.cli.servers import SERVERS
from omnigate.metrics.multiprocess import ENV as METRICS_DIR_ENV
from omnigate.testing import FakeOpenAI, Reply
from tests.chat.conftest import create_tenant
from tests.conftest import ADMIN_KEY, SECRET_KEY, truncate_postgres
from tests.observability.test_workers import settled, worker_directory

# Longer than hypercorn's own default graceful timeout (3 s): with the defaults this stream would be cut.
PIECES, PIECE_DELAY_S = 9, 0.5
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
# How the gateway is started: `serve` under each server (the container runs `serve` under hypercorn).
LAUNCHERS = {f"serve-{server}": ["-m", "omnigate", "serve", "--server", server] for server in SERVERS}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def launched(
    launcher: str, env: dict[str, str], cwd: Path, *extra: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """The gateway in its own process group, its output in ``cwd/server.log``; yields it and its URL."""
    port = free_port()
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "OMNIGATE_")) and k != METRICS_DIR_ENV
    }
    log = (cwd / "server.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *LAUNCHERS[launcher],
        "--port",
        str(port),
        *extra,
        env={**inherited, **env},
        cwd=cwd,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        log.close()


def tail(cwd: Path) -> str:
    return (cwd / "server.log").read_text(errors="replace")[-3000:]


async def wait_ready(
    base_url: str, process: asyncio.subprocess.Process, cwd: Path, timeout_s: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while True:
            assert process.returncode is None, f"the server exited during start-up:\n{tail(cwd)}"
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health/ready")).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"the server did not become ready:\n{tail(cwd)}"
            await asyncio.sleep(0.2)


def gateway_env(upstream: str, **env: str) -> dict[str, str]:
    return {
        "ADMIN_API_KEY": ADMIN_KEY,
        "OPENAI_BASE_URL": upstream,
        "OPENAI_API_KEY": "sk-test-0000000000000000",
        "ALLOW_PRIVATE_UPSTREAMS": "true",
        "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1",
        "LOG_LEVEL": "WARNING",
        **env,
    }


@pytest.mark.parametrize(
    ("launcher", "workers"),
    [(f"serve-{server}", workers) for server in SERVERS for workers in (1, 2)],
)
async def test_sigterm_lets_an_open_stream_finish(launcher: str, workers: int, tmp_path: Path) -> None:
    """With two workers, the idle one is done at once while the other still streams: the server waits."""
    async with FakeOpenAI() as fake:
        pieces = [f"p{i} " for i in range(PIECES)]
        fake.enqueue(Reply.text(pieces, chunk_delay_s=PIECE_DELAY_S))
        env = gateway_env(fake.base_url, DATABASE_URL=f"sqlite:///{tmp_path / 'omnigate.db'}")
        async with launched(launcher, env, tmp_path, "--workers", str(workers)) as (process, base_url):
            await wait_ready(base_url, process, tmp_path)
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                tenant = await create_tenant(client)
                lines: list[str] = []
                signalled_at: float | None = None
                async with client.stream(
                    "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=tenant.headers
                ) as response:
                    assert response.status_code == 200
                    assert "server" not in response.headers, "the server software is not announced"
                    async for line in response.aiter_lines():
                        if signalled_at is None and '"p0 ' in line:
                            process.send_signal(signal.SIGTERM)
                            signalled_at = time.monotonic()
                        if line:
                            lines.append(line)
            assert signalled_at is not None, "no content arrived"
            streamed_for = time.monotonic() - signalled_at
            assert lines[-1] == "data: [DONE]", lines[-3:]
            assert "".join(pieces) == "".join(
                part.split('"content":"', 1)[1].split('"', 1)[0] for part in lines if '"content":"' in part
            )
            assert streamed_for > 3.0, "the stream outlived hypercorn's default 3 s grace"
            assert await asyncio.wait_for(process.wait(), timeout=20) == 0, tail(tmp_path)


def busy_workers(directory: Path | None, counts: dict[str, float]) -> int:
    return 1 if directory is None else len([n for n in counts.values() if n > 0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("server", SERVERS)
async def test_sigterm_to_the_group_writes_every_usage_record_before_exit(
    server: str, workers: int, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Inserts into usage_records are held back by a table lock until after SIGTERM, so every record
    found afterwards was written by a worker's shutdown, and the server may not exit before that.
    SIGTERM goes to every process of the server at once, as a service manager's stop does."""
    truncate_postgres(postgres_url)
    async with FakeOpenAI() as fake:
        env = gateway_env(
            fake.base_url,
            DATABASE_URL=postgres_url,
            REDIS_URL=redis_url,
            OMNIGATE_SECRET_KEY=SECRET_KEY,
            OMNIGATE_STATE_PREFIX=f"test:{uuid.uuid4().hex[:8]}:",
        )
        launcher = f"serve-{server}"
        async with launched(launcher, env, tmp_path, "--workers", str(workers)) as (process, base_url):
            await wait_ready(base_url, process, tmp_path)
            directory = worker_directory(process.pid) if workers > 1 else None
            async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
                tenant = await create_tenant(client)

            async def one_chat() -> None:
                # A connection per request, so the kernel spreads them over the workers' accept().
                async with httpx.AsyncClient(base_url=base_url, timeout=20) as fresh:
                    response = await fresh.post("/v1/chat/completions", json=CHAT, headers=tenant.headers)
                    assert response.status_code == 200, response.text

            async with await psycopg.AsyncConnection.connect(postgres_url) as lock:
                await lock.execute("LOCK TABLE usage_records IN EXCLUSIVE MODE")  # reads pass, inserts wait
                sent, counts = 0, {}
                while sent < 400:
                    await asyncio.gather(*(one_chat() for _ in range(20)))
                    sent += 20
                    counts = await settled(directory, sent) if directory else {}
                    if busy_workers(directory, counts) == workers:
                        break
                assert busy_workers(directory, counts) == workers, counts
                os.killpg(process.pid, signal.SIGTERM)
                await asyncio.sleep(2.0)
                assert process.returncode is None, f"exited with records unwritten:\n{tail(tmp_path)}"
                await lock.rollback()  # releases the lock: the blocked inserts go through
            assert await asyncio.wait_for(process.wait(), timeout=30) == 0, tail(tmp_path)
    assert directory is None or not directory.exists(), "the private metrics directory is removed"
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM usage_records WHERE project_id = %s", (tenant.project_id,)
        ).fetchone()
    assert row is not None and row[0] == sent, tail(tmp_path)
