"""The provider through a real gateway (plugin registered explicitly) against FakeOllama over real sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from omnigate.testing import Reply, ToolCall, Usage
from omnigate.testing.pytest_plugin import OMNIGATE_TEST_ADMIN_KEY, GatewayFactory, serve_gateway

from omnigate_ollama.testing import FakeOllama

from ollama_helpers import PLUGINS, Gateway, create_project, start_gateway, user

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def sse_events(response: httpx.Response) -> tuple[list[dict[str, Any]], str]:
    """The JSON data events of a streamed reply, and the last data line (``[DONE]`` on a clean end)."""
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [json.loads(data) for data in lines if data != "[DONE]"], lines[-1]


async def test_json_chat_with_usage_and_the_body_ollama_gets(gateway: Gateway, fake: FakeOllama) -> None:
    fake.enqueue(Reply.text("Bonjour !", usage=Usage(input=26, output=4)))
    body = {
        "model": "ollama/llama3",
        "messages": [{"role": "system", "content": "terse"}, user("hi")],
        "temperature": 0.3,
        "max_tokens": 50,
        "response_format": {"type": "json_object"},
    }
    response = await gateway.chat(body, path="/v1/chat")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["provider"] == "ollama" and answer["message"] == {
        "role": "assistant",
        "content": "Bonjour !",
    }
    assert answer["finish_reason"] == "stop"
    assert answer["usage"]["prompt_tokens"] == 26 and answer["usage"]["completion_tokens"] == 4
    (sent,) = fake.requests
    assert sent.path == "/api/chat" and "authorization" not in sent.headers
    assert sent.json == {
        "model": "llama3",
        "messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}],
        "stream": False,
        "options": {"temperature": 0.3, "num_predict": 50},
        "format": "json",
    }


async def test_stream_relays_text_then_finish_and_usage(gateway: Gateway, fake: FakeOllama) -> None:
    fake.enqueue(Reply.text(["The ", "sky ", "is ", "blue."], usage=Usage(input=12, output=5)))
    response = await gateway.chat({"model": "ollama/llama3", "messages": [user("why?")], "stream": True})
    assert response.status_code == 200
    events, last = sse_events(response)
    assert last == "[DONE]"
    text = "".join(choice["delta"].get("content") or "" for e in events for choice in e.get("choices", []))
    assert text == "The sky is blue."
    finishes = [c["finish_reason"] for e in events for c in e.get("choices", []) if c.get("finish_reason")]
    assert finishes == ["stop"]
    assert fake.requests[0].json["stream"] is True and fake.requests[0].completed


async def test_tool_calls_round_trip_json_and_stream(gateway: Gateway, fake: FakeOllama) -> None:
    call = ToolCall.of("ignored", "weather", {"city": "Paris"})
    fake.enqueue(Reply.tool_calls([call]), Reply.tool_calls([call, ToolCall.of("x", "time", {})]))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    response = await gateway.chat({"model": "ollama/llama3", "messages": [user("Paris?")], "tools": tools})
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (made,) = choice["message"]["tool_calls"]
    assert made["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    assert fake.requests[0].json["tools"] == tools

    history = [
        user("Paris?"),
        {"role": "assistant", "content": None, "tool_calls": [made]},
        {"role": "tool", "tool_call_id": made["id"], "content": "sunny"},
    ]
    streamed = await gateway.chat(
        {"model": "ollama/llama3", "messages": history, "tools": tools, "stream": True}
    )
    events, last = sse_events(streamed)
    assert last == "[DONE]"
    deltas = [t for e in events for c in e.get("choices", []) for t in (c["delta"].get("tool_calls") or [])]
    assert [(d["index"], d["function"]["name"]) for d in deltas] == [(0, "weather"), (1, "time")]
    assert all(d["id"].startswith("call_") for d in deltas)
    sent = fake.requests[1].json["messages"]
    assert sent[1]["tool_calls"] == [
        {"function": {"index": 0, "name": "weather", "arguments": {"city": "Paris"}}}
    ]
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_name": "weather"}


async def test_inline_images_are_sent_as_base64_and_links_refused(gateway: Gateway, fake: FakeOllama) -> None:
    parts = [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    response = await gateway.chat(
        {"model": "ollama/llama3", "messages": [{"role": "user", "content": parts}]}
    )
    assert response.status_code == 200
    assert fake.requests[0].json["messages"][0] == {"role": "user", "content": "what?", "images": [PIXEL]}
    linked = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    refused = await gateway.chat(
        {"model": "ollama/llama3", "messages": [{"role": "user", "content": linked}]}
    )
    assert refused.status_code == 400 and "inline" in refused.json()["error"]["message"]
    assert fake.request_count == 1


async def test_unknown_model_keeps_ollamas_404_and_message(gateway: Gateway, fake: FakeOllama) -> None:
    response = await gateway.chat({"model": "ollama/mistral", "messages": [user("x")]})
    assert response.status_code == 404
    assert 'model "mistral" not found' in response.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_server_errors_become_upstream_errors(
    ollama_env: FakeOllama, omnigate_gateway: GatewayFactory, stream: bool
) -> None:
    gateway = await start_gateway(omnigate_gateway, RETRY_MAX_ATTEMPTS="1")
    ollama_env.enqueue(Reply.error(500, "llama runner process has terminated"))
    response = await gateway.chat({"model": "ollama/llama3", "messages": [user("x")], "stream": stream})
    assert response.status_code == 502
    error = response.json()["error"]
    assert "llama runner process has terminated" in error["message"] and error["type"] == "upstream_error"


async def test_mid_stream_error_line_ends_the_stream_with_an_error(
    gateway: Gateway, fake: FakeOllama
) -> None:
    fake.enqueue(Reply.text(["a ", "b ", "c"], error_after=2, message="out of memory"))
    response = await gateway.chat({"model": "ollama/llama3", "messages": [user("x")], "stream": True})
    events, last = sse_events(response)
    assert last != "[DONE]"
    assert "out of memory" in events[-1]["error"]["message"]
    assert "".join(c["delta"].get("content") or "" for e in events for c in e.get("choices", [])) == "a b "


async def test_a_cut_stream_is_truncated_never_a_clean_end(gateway: Gateway, fake: FakeOllama) -> None:
    fake.enqueue(Reply.text(["one ", "two ", "three"], cut_after=2))
    response = await gateway.chat(
        {"model": "ollama/llama3", "messages": [user("x")], "stream": True}, path="/v1/chat"
    )
    events, last = sse_events(response)
    assert last != "[DONE]" and events[-1]["error"] is not None
    assert all(event["usage"] is None for event in events)


async def test_a_body_ending_without_the_done_object_is_truncated(gateway: Gateway, fake: FakeOllama) -> None:
    lines = [
        {"model": "llama3", "message": {"role": "assistant", "content": piece}, "done": False}
        for piece in ("x ", "y")
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    fake.enqueue(Reply.raw(200, body, content_type="application/x-ndjson"))
    response = await gateway.chat(
        {"model": "ollama/llama3", "messages": [user("x")], "stream": True}, path="/v1/chat"
    )
    events, last = sse_events(response)
    assert last != "[DONE]"
    assert "".join(e["delta"]["content"] for e in events if e["delta"]) == "x y"
    assert events[-1]["error"]["code"] == "upstream_stream_truncated"


async def test_api_key_is_sent_as_bearer_and_prefixes_route_bare_names(
    ollama_env: FakeOllama, omnigate_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "proxy-token-0123456789")
    monkeypatch.setenv("OLLAMA_MODEL_PREFIXES", "llama,qwen")
    monkeypatch.setenv("OLLAMA_KEEP_ALIVE", "5m")
    ollama_env.api_key = "proxy-token-0123456789"
    gateway = await start_gateway(omnigate_gateway)
    response = await gateway.chat({"model": "qwen2.5:7b", "messages": [user("x")]})
    assert response.status_code == 200, response.text
    (sent,) = ollama_env.requests
    assert sent.headers["authorization"] == "Bearer proxy-token-0123456789"
    assert sent.json["model"] == "qwen2.5:7b" and sent.json["keep_alive"] == "5m"
    ollama_env.api_key = "another-token-000000000"
    rejected = await gateway.chat({"model": "llama3", "messages": [user("x")]})
    assert rejected.status_code == 502 and "proxy-token" not in rejected.text


async def test_invalid_plugin_settings_fail_the_start(
    omnigate_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", "localhost:11434")
    with pytest.raises(Exception, match="OLLAMA_BASE_URL: must start with http"):
        await start_gateway(omnigate_gateway)


async def test_client_disconnect_stops_the_upstream_generation(
    ollama_env: FakeOllama, tmp_path: Path
) -> None:
    """Over a real socket: the client leaving mid-stream closes the connection to Ollama."""
    ollama_env.enqueue(Reply.text([f"w{i} " for i in range(20)], chunk_delay_s=0.2))
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}",
        "ADMIN_API_KEY": OMNIGATE_TEST_ADMIN_KEY,
        "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1",
        "LOG_LEVEL": "WARNING",
    }
    async with (
        serve_gateway(env, PLUGINS) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        key = await create_project(client)
        body = {"model": "ollama/llama3", "messages": [user("x")], "stream": True}
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as response:
            async for line in response.aiter_lines():
                if "w0" in line:
                    break
        await ollama_env.wait_disconnected(timeout_s=5)
    assert not ollama_env.requests[-1].completed and ollama_env.requests[-1].events_sent < 20


async def test_a_prices_file_entry_gives_ollama_models_a_cost(
    ollama_env: FakeOllama, omnigate_gateway: GatewayFactory, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {"ollama/llama3": {"input": 0, "output": 0}, "ollama/qwen2.5:7b": {"input": 1, "output": 2}}
        )
    )
    gateway = await start_gateway(omnigate_gateway, MODEL_PRICES_FILE=str(prices))
    ollama_env.enqueue(
        Reply.text("a", usage=Usage(input=10, output=5)), Reply.text("b", usage=Usage(input=10, output=5))
    )
    free = await gateway.chat({"model": "ollama/llama3", "messages": [user("x")]}, path="/v1/chat")
    paid = await gateway.chat({"model": "ollama/qwen2.5:7b", "messages": [user("x")]}, path="/v1/chat")
    assert free.json()["cost_usd"] == 0
    assert paid.json()["cost_usd"] == (10 * 1 + 5 * 2) / 1_000_000
