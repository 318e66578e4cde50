"""Translation to and from Ollama's /api/chat, without a network: request body, JSON answer, NDJSON lines."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from omnigate.chat.models import (
    ChatRequest,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    Message,
    StreamChunk,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from omnigate.errors import InvalidRequestError, UpstreamError
from omnigate.settings import SettingsError

from omnigate_ollama.config import OllamaConfig, parse_config
from omnigate_ollama.wire import StreamTranslator, build_request, parse_response

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def request(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="ollama/llama3", messages=list(messages), **fields)


def test_sampling_goes_into_options_and_stream_is_always_explicit() -> None:
    body = build_request(
        request(
            Message("user", "hi"), temperature=0.2, top_p=0.9, max_tokens=64, stop="END", seed=7, user="u-1"
        ),
        "llama3",
        keep_alive="10m",
    )
    assert body == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": {"temperature": 0.2, "top_p": 0.9, "num_predict": 64, "stop": ["END"], "seed": 7},
        "keep_alive": "10m",
    }
    streamed = build_request(request(Message("user", "hi"), stream=True, max_completion_tokens=5), "llama3")
    assert streamed["stream"] is True and streamed["options"] == {"num_predict": 5}


def test_response_formats_map_to_format() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    json_mode = build_request(request(Message("user", "x"), response_format={"type": "json_object"}), "m")
    with_schema = build_request(
        request(
            Message("user", "x"),
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        ),
        "m",
    )
    text = build_request(request(Message("user", "x"), response_format={"type": "text"}), "m")
    assert json_mode["format"] == "json" and with_schema["format"] == schema and "format" not in text


def test_roles_images_tool_calls_and_tool_names() -> None:
    messages = [
        Message("developer", "be brief"),
        Message(
            "user",
            [TextPart("what is"), TextPart("this?"), ImagePart(ImageURL(f"data:image/png;base64,{PIXEL}"))],
        ),
        Message(
            "assistant",
            None,
            tool_calls=[
                ToolCall("call_a", FunctionCall("lookup", '{"q": "pixel"}')),
                ToolCall("call_b", FunctionCall("now", "")),
            ],
        ),
        Message("tool", "a red pixel", tool_call_id="call_a"),
        Message("tool", "noon", tool_call_id="call_b"),
    ]
    tools = [
        Tool(
            FunctionDefinition(
                "lookup", "search", {"type": "object", "properties": {"q": {"type": "string"}}}
            )
        ),
        Tool(FunctionDefinition("now")),
    ]
    body = build_request(request(*messages, tools=tools, tool_choice="auto"), "llava")
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is\nthis?", "images": [PIXEL]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"index": 0, "name": "lookup", "arguments": {"q": "pixel"}}},
                {"function": {"index": 1, "name": "now", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "a red pixel", "tool_name": "lookup"},
        {"role": "tool", "content": "noon", "tool_name": "now"},
    ]
    assert body["tools"][0] == {
        "type": "function",
        "function": {"name": "lookup", "parameters": tools[0].function.parameters, "description": "search"},
    }
    assert body["tools"][1]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert "tools" not in build_request(request(*messages, tools=tools, tool_choice="none"), "llava")


def test_linked_images_and_bad_arguments_are_400s_naming_the_field() -> None:
    linked = Message("user", [ImagePart(ImageURL("https://example.com/cat.png"))])
    with pytest.raises(InvalidRequestError) as error:
        build_request(request(linked), "llava")
    assert error.value.param == "messages[0].content[0].image_url.url"
    broken = Message("assistant", None, tool_calls=[ToolCall("c", FunctionCall("f", "[1, 2]"))])
    with pytest.raises(InvalidRequestError) as error:
        build_request(request(Message("user", "x"), broken), "m")
    assert error.value.param == "messages[1].tool_calls[0].function.arguments"


def test_json_answer_with_usage_finish_reason_and_tool_calls() -> None:
    answer = {
        "model": "llama3",
        "message": {"role": "assistant", "content": "Hello!", "thinking": "hmm"},
        "done": True,
        "done_reason": "length",
        "prompt_eval_count": 26,
        "eval_count": 298,
    }
    result = parse_response(orjson.dumps(answer), "llama3", "ollama-r1")
    assert (result.id, result.content, result.finish_reason) == ("ollama-r1", "Hello!", "length")
    assert result.usage == Usage(input_tokens=26, output_tokens=298)
    calls = {
        "model": "llama3",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}],
        },
        "done": True,
        "done_reason": "stop",
    }
    result = parse_response(orjson.dumps(calls), "llama3", "ollama-r2")
    assert result.content is None and result.finish_reason == "tool_calls"
    (call,) = result.tool_calls
    assert call.function == FunctionCall("weather", '{"city":"Paris"}') and call.id.startswith("call_")
    assert result.usage == Usage()


@pytest.mark.parametrize(
    "body", [b"not json", b"[1]", b'{"done": true}', b'{"message": {"tool_calls": [{}]}}']
)
def test_malformed_answers_are_upstream_errors(body: bytes) -> None:
    with pytest.raises(UpstreamError) as error:
        parse_response(body, "m", "id")
    assert error.value.code == "upstream_bad_response" and error.value.status_code == 502


def test_an_error_object_in_a_200_answer_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError) as error:
        parse_response(b'{"error": "model failed to load"}', "m", "id")
    assert error.value.code == "upstream_error" and "model failed to load" in error.value.message


def line(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def test_stream_lines_become_chunks_then_finish_then_usage() -> None:
    translator = StreamTranslator("llama3")
    assert translator.feed(
        line({"model": "llama3", "message": {"role": "assistant", "content": "Hel"}, "done": False})
    ) == [StreamChunk(text="Hel")]
    assert translator.feed(line({"message": {"role": "assistant", "content": ""}, "done": False})) == []
    tool_line = {
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_x", "function": {"name": "f", "arguments": {"a": 1}}}],
        },
        "done": False,
    }
    assert translator.feed(line(tool_line)) == [
        StreamChunk(tool_calls=(ToolCallDelta(0, id="call_x", name="f", arguments='{"a":1}'),))
    ]
    final = {
        "model": "llama3:8b",
        "message": {"role": "assistant", "content": "!"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 4,
    }
    assert translator.feed(line(final)) == [
        StreamChunk(text="!"),
        StreamChunk(finish_reason="tool_calls"),
        StreamChunk(usage=Usage(input_tokens=3, output_tokens=4)),
    ]
    assert translator.done and translator.model == "llama3:8b"


def test_stream_error_lines_raise_without_secrets() -> None:
    translator = StreamTranslator("m", secrets=("sk-proxy-secret-123",))
    with pytest.raises(UpstreamError) as error:
        translator.feed(line({"error": "proxy refused sk-proxy-secret-123"}))
    assert error.value.code == "upstream_stream_error" and not error.value.retryable
    assert "sk-proxy" not in error.value.message


def test_config_parses_and_reports_every_problem() -> None:
    config = parse_config(
        {
            "OLLAMA_BASE_URL": "http://ollama:11434/",
            "OLLAMA_API_KEY": "secret-key",
            "OLLAMA_MODEL_PREFIXES": "llama, qwen",
            "OLLAMA_KEEP_ALIVE": "300",
        }
    )
    assert config == OllamaConfig(
        base_url="http://ollama:11434",
        api_key="secret-key",
        model_prefixes=("llama", "qwen"),
        keep_alive=300.0,
    )
    assert "secret-key" not in repr(config)
    assert parse_config({"OLLAMA_KEEP_ALIVE": "1h30m"}).keep_alive == "1h30m"
    assert parse_config({}) == OllamaConfig()
    with pytest.raises(SettingsError) as error:
        parse_config(
            {"OLLAMA_BASE_URL": "ollama:11434", "OLLAMA_MODEL_PREFIXES": "a/b", "OLLAMA_KEEP_ALIVE": "soon"}
        )
    assert [problem.split(":")[0] for problem in error.value.problems] == [
        "OLLAMA_BASE_URL",
        "OLLAMA_MODEL_PREFIXES",
        "OLLAMA_KEEP_ALIVE",
    ]
