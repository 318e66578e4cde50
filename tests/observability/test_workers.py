"""`serve --workers 2` (hypercorn or uvicorn): a scrape, whichever worker answers it, counts both workers."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from omnigate.cli.servers import SERVERS
from omnigate.metrics.multiprocess import ENV, multiprocess_directory
from omnigate.testing import FakeOpenAI
from tests.conftest import ADMIN_KEY, admin_headers

CHAT = "/v1/chat/completions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chat_requests(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "omnigate_http_requests_total" and sample.labels.get("route") == CHAT
    )


def gauge(text: str, name: str) -> float:
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def worker_directory(master_pid: int) -> Path:
    """The metrics directory the serve command handed its workers (read from a child's environment)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != master_pid:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for entry in environ:
            if entry.startswith(ENV.encode() + b"="):
                return Path(entry.split(b"=", 1)[1].decode())
    raise AssertionError("no worker process carries the metrics directory")


def requests_per_worker(directory: Path) -> dict[str, float]:
    counts = {}
    for path in directory.glob("counter_*.db"):
        metrics = MultiProcessCollector.merge([str(path)], accumulate=False)  # type: ignore[no-untyped-call]
        counts[path.stem.split("_", 1)[1]] = sum(
            s.value
            for m in metrics
            for s in m.samples
            if s.name == "omnigate_http_requests_total" and s.labels.get("route") == CHAT
        )
    return counts


async def settled(directory: Path, sent: int) -> dict[str, float]:
    """Per-worker counts once all ``sent`` requests are counted (observers run just after the last byte)."""
    for _ in range(50):
        counts = requests_per_worker(directory)
        if sum(counts.values()) == sent:
            return counts
        await asyncio.sleep(0.1)
    raise AssertionError(f"{sent} requests sent, counted {counts}")


async def wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(150):
            if process.poll() is not None:
                raise AssertionError(f"serve exited early: {process.stderr.read() if process.stderr else ''}")
            try:
                if (await client.get(base + "/health/ready", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("serve did not become ready")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
@pytest.mark.parametrize("server", SERVERS)
async def test_two_workers_are_counted_together(tmp_path: Path, server: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with FakeOpenAI() as upstream:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "REDIS_URL", "OMNIGATE_"))
        }
        env.pop(ENV, None)
        env.update(
            ADMIN_API_KEY=ADMIN_KEY,
            OPENAI_API_KEY="sk-workers-test-000000",
            OPENAI_BASE_URL=upstream.base_url,
            ALLOW_PRIVATE_UPSTREAMS="true",
            LOG_LEVEL="WARNING",
        )
        process = await asyncio.to_thread(
            functools.partial(
                subprocess.Popen,
                [
                    sys.executable,
                    "-m",
                    "omnigate",
                    "serve",
                    "--server",
                    server,
                    "--port",
                    str(port),
                    "--workers",
                    "2",
                ],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        try:
            await wait_ready(base, process)
            directory = worker_directory(process.pid)
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                org = (
                    await client.post("/v1/admin/orgs", json={"name": "w"}, headers=admin_headers())
                ).json()
                project = await client.post(
                    "/v1/admin/projects", json={"org_id": org["id"], "name": "w"}, headers=admin_headers()
                )
                key = project.json()["api_key"]

            async def one_chat() -> None:
                # A connection per request, so the kernel spreads them over both workers' accept().
                async with httpx.AsyncClient(base_url=base, timeout=20) as fresh:
                    response = await fresh.post(
                        CHAT,
                        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                        headers={"authorization": f"Bearer {key}"},
                    )
                    assert response.status_code == 200, response.text

            sent = 0
            while sent < 400:
                await asyncio.gather(*(one_chat() for _ in range(20)))
                sent += 20
                per_worker = await settled(directory, sent)
                if len([n for n in per_worker.values() if n > 0]) >= 2:
                    break
            assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker
            for _ in range(6):
                async with httpx.AsyncClient(base_url=base, timeout=20) as fresh:
                    text = (await fresh.get("/metrics")).text
                assert chat_requests(text) == sent
                assert gauge(text, "omnigate_workers") == 2
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
        assert process.returncode == 0, stderr
        assert not directory.exists(), "the private metrics directory is removed when the server stops"


def test_directory_for_one_worker_multiple_and_an_operators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with multiprocess_directory(1) as single:
        assert single is None and ENV not in os.environ
    with multiprocess_directory(3) as created:
        assert created is not None and os.environ[ENV] == created and Path(created).is_dir()
    assert ENV not in os.environ and not Path(created).exists()
    operator = tmp_path / "prom"
    operator.mkdir()
    (operator / "counter_123.db").write_bytes(b"stale")
    (operator / "keep.txt").write_text("not ours")
    monkeypatch.setenv(ENV, str(operator))
    with multiprocess_directory(1) as used:
        assert used == str(operator) and not (operator / "counter_123.db").exists()
    assert (operator / "keep.txt").exists() and os.environ[ENV] == str(operator)
