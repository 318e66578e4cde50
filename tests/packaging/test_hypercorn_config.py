"""docker/hypercorn.toml under a real hypercorn process: SIGTERM mid-stream lets the stream finish."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from omnigate.testing import FakeOpenAI, Reply
from tests.chat.conftest import create_tenant
from tests.conftest import ADMIN_KEY
from tests.packaging.conftest import DOCKER

CONFIG = DOCKER / "hypercorn.toml"
# Longer than hypercorn's own default graceful timeout (3 s): with the defaults this stream would be cut.
PIECES, PIECE_DELAY_S = 9, 0.5


def test_config_values() -> None:
    config = tomllib.loads(CONFIG.read_text())
    assert config["graceful_timeout"] >= 60, "LLM streams run for minutes: a short grace truncates them"
    assert config["worker_class"] == "uvloop" and config["bind"] == ["0.0.0.0:8080"]
    assert config["keep_alive_timeout"] > 60  # outlive a load balancer's usual 60 s idle timeout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def hypercorn(env: dict[str, str], cwd: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """hypercorn with the container's config file (only the bind address changed), in its own process group."""
    port = free_port()
    log = (cwd / "hypercorn.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hypercorn",
        "--config",
        str(CONFIG),
        "--bind",
        f"127.0.0.1:{port}",
        "omnigate.asgi:app",
        env={**os.environ, **env},
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


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def wait_ready(
    base_url: str, process: asyncio.subprocess.Process, log: Path, timeout_s: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while True:
            assert process.returncode is None, f"hypercorn exited during start-up:\n{tail(log)}"
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health/ready")).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"hypercorn did not become ready:\n{tail(log)}"
            await asyncio.sleep(0.2)


async def test_sigterm_lets_an_open_stream_finish(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake:
        pieces = [f"p{i} " for i in range(PIECES)]
        fake.enqueue(Reply.text(pieces, chunk_delay_s=PIECE_DELAY_S))
        env = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'omnigate.db'}",
            "ADMIN_API_KEY": ADMIN_KEY,
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "sk-test-0000000000000000",
            "ALLOW_PRIVATE_UPSTREAMS": "true",
            "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1",
            "LOG_LEVEL": "WARNING",
        }
        async with hypercorn(env, tmp_path) as (process, base_url):
            await wait_ready(base_url, process, tmp_path / "hypercorn.log")
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                tenant = await create_tenant(client)
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "x"}],
                    "stream": True,
                }
                lines: list[str] = []
                signalled_at: float | None = None
                async with client.stream(
                    "POST", "/v1/chat/completions", json=body, headers=tenant.headers
                ) as response:
                    assert response.status_code == 200
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
            assert await asyncio.wait_for(process.wait(), timeout=20) == 0
