"""What a surface renders from, and the protocol every surface implements."""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from omnigate.chat.models import ChatResult, StreamChunk, ToolCall, Usage
from omnigate.errors import OmnigateError


@attrs.define
class Reply:
    """Facts about one answer that surfaces render besides the model's output."""

    request_id: str
    id: str
    model: str
    provider: str
    created: int
    include_usage: bool = True
    cost_micros: int | None = None
    latency_ms: int = 0
    cached: bool = False
    fallback_used: bool = False


def usage_fields(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def tool_calls_json(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """Whole tool calls in OpenAI's shape (both surfaces use it)."""
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        for call in calls
    ]


def cost_usd(cost_micros: int | None) -> float | None:
    return None if cost_micros is None else cost_micros / 1_000_000


class Surface(Protocol):
    name: str
    # The wire whose upstream answers (JSON and stream events) this surface relays as they are, if any.
    passthrough: str | None

    def render_result(self, result: ChatResult, reply: Reply) -> dict[str, Any]: ...

    def stream_start(self, reply: Reply) -> bytes: ...

    def stream_chunk(self, chunk: StreamChunk, reply: Reply) -> bytes: ...

    def stream_end(self, usage: Usage | None, finish_reason: str | None, reply: Reply) -> bytes: ...

    def stream_error(self, error: OmnigateError, reply: Reply) -> bytes: ...
