"""Streaming over a real socket: relayed as it arrives, cancelled with the client, never ending falsely."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

import httpx
import openai
import pytest

from omnigate.testing import Reply, Usage
from tests.chat.conftest import MODELS, Fakes, Served, user


async def test_first_chunk_reaches_the_client_before_the_upstream_finishes(
    served: Served, fakes: Fakes
) -> None:
    fakes.openai.enqueue(Reply.text(["a ", "b ", "c ", "d ", "e"], chunk_delay_s=0.3))
    body = {"model": "gpt-4o-mini", "messages": [user("x")], "stream": True}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
        started = time.monotonic()
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers=served.tenant.headers
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first_content_at = None
            async for line in response.aiter_lines():
                if first_content_at is None and '"content":"a ' in line:
                    first_content_at = time.monotonic() - started
                    assert not fakes.openai.requests[-1].completed, "the upstream had already finished"
            total = time.monotonic() - started
    assert first_content_at is not None and total >= 1.2 and first_content_at < total - 0.8


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_client_disconnect_cancels_the_upstream(served: Served, fakes: Fakes, provider: str) -> None:
    fake = fakes.for_provider(provider)
    fake.enqueue(Reply.text([f"w{i} " for i in range(20)], chunk_delay_s=0.25))
    body = {"model": MODELS[provider], "messages": [user("x")], "stream": True}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers=served.tenant.headers
        ) as response:
            async for line in response.aiter_lines():
                if "w0" in line:
                    break
    await fake.wait_disconnected(timeout_s=5)
    assert not fake.requests[-1].completed
    row = await wait_for_usage_row(served)
    assert row.status == "cancelled" and row.http_status == 499 and row.provider == provider


async def test_answered_requests_leave_no_disconnect_watcher_behind(served: Served, fakes: Fakes) -> None:
    # A watcher is not cancelled once the response is complete: the server must end its receive.
    # (No garbage collection meanwhile: a task left pending on nothing else would vanish from all_tasks.)
    fakes.openai.set_default(Reply.text(["a ", "b"]))

    def watchers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if "DisconnectWatch" in t.get_coro().__qualname__]

    gc.disable()
    try:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
            for stream in (False, True, False, True):
                body = {"model": "gpt-4o-mini", "messages": [user("x")], "stream": stream}
                response = await client.post("/v1/chat/completions", json=body, headers=served.tenant.headers)
                assert response.status_code == 200
            refused = await client.post(
                "/v1/chat/completions", json={"model": "gpt-4o-mini"}, headers=served.tenant.headers
            )
            assert refused.status_code == 400
            await asyncio.sleep(0.2)
            assert not watchers()  # with the keep-alive connection still open
    finally:
        gc.enable()


async def wait_for_usage_row(served: Served, timeout_s: float = 5.0) -> Any:
    """The served gateway's one usage row, read through a second store connection once the writer flushed it."""
    from omnigate.store.database import Database
    from omnigate.store.usage import list_usage

    db = Database(served.database_url)
    await db.connect()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await list_usage(db, served.tenant.project_id)
            if rows or time.monotonic() > deadline:
                assert len(rows) == 1, rows
                return rows[0]
            await asyncio.sleep(0.1)
    finally:
        await db.disconnect()


async def test_cut_mid_stream_ends_with_an_error_event_not_a_clean_end(served: Served, fakes: Fakes) -> None:
    fakes.anthropic.enqueue(Reply.text(["one ", "two ", "three ", "four"], cut_after=5, chunk_delay_s=0.05))
    client = openai.AsyncOpenAI(api_key=served.tenant.key, base_url=served.base_url + "/v1", max_retries=0)
    stream = await client.chat.completions.create(
        model="claude-sonnet-4-5", messages=[user("x")], stream=True
    )
    received = ""
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            for choice in chunk.choices:
                received += choice.delta.content or ""
    assert received.startswith("one")
    await client.close()


async def test_native_stream_cut_ends_with_an_error_chunk(served: Served, fakes: Fakes) -> None:
    fakes.gemini.enqueue(Reply.text(["one ", "two ", "three"], cut_after=2, chunk_delay_s=0.05))
    body = {"model": "gemini-2.5-flash", "messages": [user("x")], "stream": True}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
        response = await client.post("/v1/chat", json=body, headers=served.tenant.headers)
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert events[-1]["error"] is not None and events[-1]["usage"] is None
    assert "data: [DONE]" not in response.text


async def test_upstream_failing_before_the_first_chunk_gets_a_real_status(
    served: Served, fakes: Fakes
) -> None:
    fakes.openai.enqueue(Reply.error(503, "overloaded"))
    body = {"model": "gpt-4o-mini", "messages": [user("x")], "stream": True}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
        response = await client.post("/v1/chat/completions", json=body, headers=served.tenant.headers)
    assert response.status_code == 503 and response.json()["error"]["type"] == "upstream_error"


async def test_openai_sdk_stream_over_a_socket_with_usage(served: Served, fakes: Fakes) -> None:
    fakes.gemini.enqueue(Reply.text("alpha beta", usage=Usage(input=7, output=2, reasoning=1)))
    client = openai.AsyncOpenAI(api_key=served.tenant.key, base_url=served.base_url + "/v1", max_retries=0)
    chunks: list[Any] = []
    stream = await client.chat.completions.create(
        model="gemini-2.5-flash", messages=[user("x")], stream=True, stream_options={"include_usage": True}
    )
    async for chunk in stream:
        chunks.append(chunk)
    await client.close()
    usage = chunks[-1].usage
    assert usage.prompt_tokens == 7 and usage.completion_tokens == 2
    assert usage.completion_tokens_details.reasoning_tokens == 1
    await asyncio.sleep(0)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/chat"])
async def test_an_in_band_object_error_ends_the_stream_with_an_error_event_not_a_clean_end(
    served: Served, fakes: Fakes, path: str
) -> None:
    # vLLM's in-band error: {"object": "error", ...} without an "error" key, then [DONE] all the same.
    chunk = b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}\n\n'
    failure = b'data: {"object":"error","message":"out of KV cache","type":"InternalServerError","param":null,"code":500}\n\n'
    fakes.openai.enqueue(
        Reply.raw(200, chunk + failure + b"data: [DONE]\n\n", content_type="text/event-stream")
    )
    body = {"model": "gpt-4o-mini", "messages": [user("x")], "stream": True}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
        response = await client.post(path, json=body, headers=served.tenant.headers)
    assert response.status_code == 200 and "partial" in response.text
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert events[-1].get("error") and "out of KV cache" in json.dumps(events[-1]["error"])
    assert "data: [DONE]" not in response.text
    row = await wait_for_usage_row(served)
    assert row.status == "truncated" and row.error_code == "upstream_stream_error"
