"""Exact SSE bytes per provider, read with a raw aiohttp client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from omnigate.testing.fakes import (
    FakeAnthropic,
    FakeAzureOpenAI,
    FakeGemini,
    FakeOpenAI,
    Reply,
    ToolCall,
    Usage,
)

USER = [{"role": "user", "content": "hi there"}]
OPENAI_HEADERS = {"Authorization": "Bearer k"}
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _post(
    session: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str]
) -> tuple[aiohttp.ClientResponse, bytes]:
    async with session.post(url, json=body, headers=headers) as resp:
        return resp, await resp.read()


async def test_openai_sse_bytes(openai_fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    openai_fake.enqueue(Reply.text("Hello world", usage=Usage(input=3, output=2)))
    body = {"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    resp, raw = await _post(session, f"{openai_fake.base_url}/chat/completions", body, OPENAI_HEADERS)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in resp.headers
    assert raw.endswith(b"\n\ndata: [DONE]\n\n") and b"\r" not in raw and b"event:" not in raw
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    docs = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert all(e.startswith(b"data: {") and b"\n" not in e for e in events[:-2])
    assert raw == b"".join(b"data: " + orjson.dumps(d) + b"\n\n" for d in docs) + b"data: [DONE]\n\n"
    assert [d["choices"][0]["delta"] if d["choices"] else None for d in docs] == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": "Hello "},
        {"content": "world"},
        {},
        None,
    ]
    assert [d["choices"][0]["finish_reason"] if d["choices"] else "usage" for d in docs][-2:] == [
        "stop",
        "usage",
    ]
    assert docs[-1]["usage"]["total_tokens"] == 5
    assert all(d["usage"] is None for d in docs[:-1])
    assert len({(d["id"], d["created"], d["model"]) for d in docs}) == 1
    assert all(d["object"] == "chat.completion.chunk" for d in docs)


async def test_openai_tool_call_deltas(openai_fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    calls = [ToolCall("call_a", "f", '{"x": 1, "y": [1, 2]}'), ToolCall("call_b", "g", '{"z": "w"}')]
    openai_fake.enqueue(Reply.tool_calls(calls))
    body = {"model": "m", "messages": USER, "stream": True}
    _, raw = await _post(session, f"{openai_fake.base_url}/chat/completions", body, OPENAI_HEADERS)
    docs = [orjson.loads(e[6:]) for e in raw.split(b"\n\n")[:-2]]
    deltas = [d["choices"][0]["delta"] for d in docs]
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": None}
    tool_deltas = [tc for d in deltas for tc in d.get("tool_calls", [])]
    firsts = [tc for tc in tool_deltas if "id" in tc]
    assert firsts == [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    for index, call in enumerate(calls):
        fragments = [tc["function"]["arguments"] for tc in tool_deltas if tc["index"] == index]
        assert len(fragments) > 2 and "".join(fragments) == call.arguments_json
    assert docs[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }


async def test_azure_sse_prelude(azure_fake: FakeAzureOpenAI, session: aiohttp.ClientSession) -> None:
    url = f"{azure_fake.base_url}/openai/deployments/chat/chat/completions?api-version=2024-10-21"
    _, raw = await _post(session, url, {"messages": USER, "stream": True}, {"api-key": "k"})
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    first = orjson.loads(events[0][6:])
    assert first["choices"] == [] and first["id"] == "" and first["prompt_filter_results"]
    content = [orjson.loads(e[6:]) for e in events[1:-2]]
    assert all("content_filter_results" in d["choices"][0] for d in content)
    assert "".join(d["choices"][0]["delta"].get("content") or "" for d in content) == "echo: hi there"


async def test_anthropic_sse_bytes(anthropic_fake: FakeAnthropic, session: aiohttp.ClientSession) -> None:
    anthropic_fake.enqueue(
        Reply.tool_calls(
            [ToolCall("toolu_1", "f", '{"a": "bcdef"}')], text="Hi you", usage=Usage(input=9, output=4)
        )
    )
    body = {"model": "c", "max_tokens": 10, "messages": USER, "stream": True}
    resp, raw = await _post(session, f"{anthropic_fake.base_url}/v1/messages", body, ANTHROPIC_HEADERS)
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert raw.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n') and b"\r" not in raw
    events = raw.split(b"\n\n")[:-1]
    names = []
    for event in events:
        name_line, data_line = event.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        name = name_line[7:].decode()
        assert orjson.loads(data_line[6:])["type"] == name
        names.append(name)
    assert names == [
        "message_start",
        "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", *["content_block_delta"] * 4, "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    docs = [orjson.loads(e.split(b"\n")[1][6:]) for e in events]
    assert docs[0]["message"]["usage"]["input_tokens"] == 9 and docs[0]["message"]["content"] == []
    assert docs[6]["content_block"] == {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    partial = "".join(d["delta"]["partial_json"] for d in docs[7:11])
    assert docs[7]["delta"]["partial_json"] == "" and json.loads(partial) == {"a": "bcdef"}
    assert docs[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert docs[-2]["usage"]["output_tokens"] == 4


async def test_gemini_sse_bytes(gemini_fake: FakeGemini, session: aiohttp.ClientSession) -> None:
    gemini_fake.enqueue(Reply.text("one two three", usage=Usage(input=5, output=3)))
    url = f"{gemini_fake.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    resp, raw = await _post(session, url, body, {"x-goog-api-key": "k"})
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Connection"] == "close"
    assert raw.endswith(b"}\r\n\r\n") and b"[DONE]" not in raw and b"event:" not in raw
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b"" and all(e.startswith(b"data: {") and b"\n" not in e for e in events[:-1])
    docs = [orjson.loads(e[6:]) for e in events[:-1]]
    assert [d["candidates"][0]["content"]["parts"][0]["text"] for d in docs] == ["one ", "two ", "three"]
    assert [d["usageMetadata"]["candidatesTokenCount"] for d in docs] == [1, 2, 3]
    assert [d["candidates"][0].get("finishReason") for d in docs] == [None, None, "STOP"]
    assert {d["responseId"] for d in docs} == {docs[0]["responseId"]}


async def test_gemini_stream_without_alt_sse_is_a_json_array(
    gemini_fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    url = f"{gemini_fake.base_url}/v1beta/models/g:streamGenerateContent?key=k"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    resp, raw = await _post(session, url, body, {})
    assert resp.headers["Content-Type"].startswith("application/json")
    docs = orjson.loads(raw)
    assert "".join(d["candidates"][0]["content"]["parts"][0]["text"] for d in docs) == "echo: hi"


async def test_unknown_routes_use_provider_error_shapes(
    openai_fake: FakeOpenAI, anthropic_fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    resp, raw = await _post(session, f"{openai_fake.origin}/chat/completions", {}, OPENAI_HEADERS)
    assert resp.status == 404
    assert orjson.loads(raw) == {
        "error": {
            "message": "Invalid URL (POST /chat/completions)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    resp, raw = await _post(session, f"{anthropic_fake.origin}/v1/nope", {}, ANTHROPIC_HEADERS)
    assert resp.status == 404 and orjson.loads(raw)["error"]["type"] == "not_found_error"
    assert len(openai_fake.requests) == 1 and openai_fake.requests[0].path == "/chat/completions"


async def test_openai_missing_key_and_bad_body(
    openai_fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    url = f"{openai_fake.base_url}/chat/completions"
    resp, raw = await _post(session, url, {"model": "m", "messages": USER}, {})
    assert resp.status == 401
    error = orjson.loads(raw)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] is None
    assert "didn't provide an API key" in error["message"]
    resp, raw = await _post(session, url, {"model": "m"}, OPENAI_HEADERS)
    assert resp.status == 400 and orjson.loads(raw)["error"]["code"] == "missing_required_parameter"
    body = {"model": "m", "messages": USER, "stream_options": {"include_usage": True}}
    resp, _ = await _post(session, url, body, OPENAI_HEADERS)
    assert resp.status == 400
