"""The native /v1/chat surface: the response object and the one-schema SSE stream."""

from __future__ import annotations

import json

from omnigate.testing import Reply, ToolCall, Usage
from tests.chat.conftest import Fakes, Gateway, user


async def test_native_json_response(gateway: Gateway, fakes: Fakes) -> None:
    fakes.anthropic.enqueue(
        Reply.text("Bonjour", usage=Usage(input=100, output=10, cache_read=40, cache_write=20))
    )
    response = await gateway.chat({"model": "claude-sonnet-4-5", "messages": [user("hi")]}, path="/v1/chat")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "request_id",
        "model",
        "provider",
        "message",
        "finish_reason",
        "usage",
        "cost_usd",
        "latency_ms",
        "cached",
        "fallback_used",
    }
    assert body["message"] == {"role": "assistant", "content": "Bonjour"}
    assert body["provider"] == "anthropic" and body["finish_reason"] == "stop"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "total_tokens": 110,
        "cached_tokens": 40,
        "cache_write_tokens": 20,
        "reasoning_tokens": 0,
    }
    # 40 uncached × 3 + 40 read × 0.3 + 20 written × 3.75 + 10 out × 15 (micro-USD per token)
    assert body["cost_usd"] == (40 * 3 + 40 * 0.3 + 20 * 3.75 + 10 * 15) / 1_000_000
    assert body["cached"] is False and body["fallback_used"] is False


async def test_native_stream_has_deltas_then_exactly_one_usage_chunk(gateway: Gateway, fakes: Fakes) -> None:
    fakes.openai.enqueue(
        Reply.tool_calls(
            [ToolCall.of("call_1", "lookup", {"q": "x"})], text="Let me look", usage=Usage(input=5, output=9)
        )
    )
    response = await gateway.chat(
        {"model": "gpt-4o-mini", "messages": [user("hi")], "stream": True}, path="/v1/chat"
    )
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    usage_events = [e for e in events if e["usage"] is not None]
    assert len(usage_events) == 1 and events[-1] is usage_events[0]
    assert usage_events[0]["usage"]["prompt_tokens"] == 5 and usage_events[0]["finish_reason"] == "tool_calls"
    # 6.15 micro-USD, kept as whole micro-USD
    assert usage_events[0]["cost_usd"] == round(5 * 0.15 + 9 * 0.6) / 1_000_000
    deltas = [e["delta"] for e in events if e["delta"]]
    assert "".join(d["content"] or "" for d in deltas) == "Let me look"
    arguments = "".join(t["arguments"] for d in deltas for t in d.get("tool_calls") or [])
    assert json.loads(arguments) == {"q": "x"}
    assert {e["request_id"] for e in events} == {response.headers["x-request-id"]}
