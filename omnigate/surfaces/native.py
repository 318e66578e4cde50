"""omnigate's native chat format: one response object, or SSE of one chunk schema ending in a usage chunk."""

from __future__ import annotations

from typing import Any

import orjson

from omnigate.chat.models import ChatResult, StreamChunk, Usage
from omnigate.errors import OmnigateError
from omnigate.gateway.sse import frame
from omnigate.surfaces.base import Reply, cost_usd, tool_calls_json, usage_fields

DONE = b"data: [DONE]\n\n"


def native_usage(usage: Usage) -> dict[str, Any]:
    return {
        **usage_fields(usage),
        "cached_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


class NativeSurface:
    name = "native"
    passthrough: str | None = None

    def render_result(self, result: ChatResult, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": result.content}
        if result.tool_calls:
            message["tool_calls"] = tool_calls_json(result.tool_calls)
        return {
            "id": reply.id,
            "request_id": reply.request_id,
            "model": reply.model,
            "provider": reply.provider,
            "message": message,
            "finish_reason": result.finish_reason,
            "usage": native_usage(result.usage),
            "cost_usd": cost_usd(reply.cost_micros),
            "latency_ms": reply.latency_ms,
            "cached": reply.cached,
            "fallback_used": reply.fallback_used,
        }

    def _event(self, reply: Reply, **fields: Any) -> bytes:
        payload = {
            "id": reply.id,
            "request_id": reply.request_id,
            "model": reply.model,
            "provider": reply.provider,
            "delta": None,
            "finish_reason": None,
            "usage": None,
            "cost_usd": None,
            "error": None,
            **fields,
        }
        return frame(orjson.dumps(payload))

    def stream_start(self, reply: Reply) -> bytes:
        return b""

    def stream_chunk(self, chunk: StreamChunk, reply: Reply) -> bytes:
        if not (chunk.text or chunk.tool_calls):
            return b""  # finish reasons and usage go in the one terminal chunk
        delta: dict[str, Any] = {"content": chunk.text}
        if chunk.tool_calls:
            delta["tool_calls"] = [
                {"index": piece.index, "id": piece.id, "name": piece.name, "arguments": piece.arguments}
                for piece in chunk.tool_calls
            ]
        return self._event(reply, delta=delta)

    def stream_end(self, usage: Usage | None, finish_reason: str | None, reply: Reply) -> bytes:
        return (
            self._event(
                reply,
                finish_reason=finish_reason,
                usage=native_usage(usage or Usage()),
                cost_usd=cost_usd(reply.cost_micros),
                fallback_used=reply.fallback_used,
                cached=reply.cached,
            )
            + DONE
        )

    def stream_error(self, error: OmnigateError, reply: Reply) -> bytes:
        return self._event(reply, error=error.envelope()["error"])
