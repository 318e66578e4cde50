"""The OpenAI Chat Completions format: `chat.completion` JSON and `chat.completion.chunk` SSE ending `[DONE]`."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from omnigate.chat.models import OPENAI_CHAT, ChatResult, StreamChunk, Usage
from omnigate.errors import OmnigateError
from omnigate.gateway.sse import frame
from omnigate.surfaces.base import Reply, tool_calls_json, usage_fields

DONE = b"data: [DONE]\n\n"


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        **usage_fields(usage),
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class OpenAISurface:
    name = "openai"
    passthrough: str | None = OPENAI_CHAT

    def render_result(self, result: ChatResult, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": result.content, "refusal": None}
        if result.tool_calls:
            message["tool_calls"] = tool_calls_json(result.tool_calls)
        return {
            "id": reply.id,
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": result.finish_reason}
            ],
            "usage": openai_usage(result.usage),
        }

    def _chunk(self, reply: Reply, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        # The bytes orjson would write for {"id", "object", "created", "model", "choices": [{"index",
        # "delta", "logprobs", "finish_reason"}]}, with the part every chunk of the answer shares built once.
        tail = _NO_FINISH if finish_reason is None else _finish_tail(finish_reason)
        return _chunk_head(reply.id, reply.created, reply.model) + orjson.dumps(delta) + tail

    def stream_start(self, reply: Reply) -> bytes:
        return self._chunk(reply, {"role": "assistant", "content": "", "refusal": None})

    def stream_chunk(self, chunk: StreamChunk, reply: Reply) -> bytes:
        out = b""
        if chunk.text or chunk.tool_calls:
            delta: dict[str, Any] = {}
            if chunk.text:
                delta["content"] = chunk.text
            if chunk.tool_calls:
                delta["tool_calls"] = [
                    _tool_delta(piece.index, piece.id, piece.name, piece.arguments)
                    for piece in chunk.tool_calls
                ]
            out += self._chunk(reply, delta)
        if chunk.finish_reason:
            out += self._chunk(reply, {}, chunk.finish_reason)
        return out

    def stream_end(self, usage: Usage | None, finish_reason: str | None, reply: Reply) -> bytes:
        out = b""
        if reply.include_usage and usage is not None:
            payload = {
                "id": reply.id,
                "object": "chat.completion.chunk",
                "created": reply.created,
                "model": reply.model,
                "choices": [],
                "usage": openai_usage(usage),
            }
            out += frame(orjson.dumps(payload))
        return out + DONE

    def stream_error(self, error: OmnigateError, reply: Reply) -> bytes:
        # The openai SDK raises APIError on an event whose JSON has a truthy "error" key.
        return frame(error.body())


_NO_FINISH = b',"logprobs":null,"finish_reason":null}]}\n\n'


@functools.lru_cache(maxsize=1024)
def _chunk_head(completion_id: str, created: int, model: str) -> bytes:
    return (
        b'data: {"id":'
        + orjson.dumps(completion_id)
        + b',"object":"chat.completion.chunk","created":'
        + orjson.dumps(created)
        + b',"model":'
        + orjson.dumps(model)
        + b',"choices":[{"index":0,"delta":'
    )


def _finish_tail(finish_reason: str) -> bytes:
    return b',"logprobs":null,"finish_reason":' + orjson.dumps(finish_reason) + b"}]}\n\n"


def _tool_delta(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    piece: dict[str, Any] = {"index": index}
    if call_id is not None:
        piece["id"] = call_id
        piece["type"] = "function"
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    piece["function"] = function
    return piece
