"""Native ``/v1/chat``: the request's message shape, the response, and the one stream-chunk schema."""

from __future__ import annotations

from typing import Any, TypedDict

from omnigate_sdk._models._base import OmnigateModel


class _MessageRole(TypedDict):
    role: str


class MessageParam(_MessageRole, total=False):
    """A request message (``role`` required); plain dicts of this shape are what ``messages`` takes."""

    content: str | list[dict[str, Any]] | None
    name: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str


class FunctionCall(OmnigateModel):
    name: str
    arguments: str


class ToolCall(OmnigateModel):
    id: str
    type: str = "function"
    function: FunctionCall


class ChatMessage(OmnigateModel):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatUsage(OmnigateModel):
    """Token counts: ``prompt_tokens`` includes cached tokens, ``completion_tokens`` includes reasoning."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


class ChatResponse(OmnigateModel):
    """A whole answer; budget and rate-limit headers are in ``response_headers``."""

    id: str
    request_id: str
    model: str
    provider: str
    message: ChatMessage
    finish_reason: str | None = None
    usage: ChatUsage = ChatUsage()
    cost_usd: float | None = None
    latency_ms: int = 0
    cached: bool = False
    fallback_used: bool = False

    @property
    def text(self) -> str:
        return self.message.content or ""


class ToolCallDelta(OmnigateModel):
    """A piece of a streamed tool call: the first piece of each ``index`` carries ``id`` and ``name``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ChunkDelta(OmnigateModel):
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ErrorDetail(OmnigateModel):
    message: str = ""
    type: str | None = None
    code: str | None = None
    param: str | None = None


class StreamChunk(OmnigateModel):
    """One stream event: a ``delta``, or the terminal chunk (``usage``, ``finish_reason``, ``cost_usd``)."""

    id: str = ""
    request_id: str | None = None
    model: str | None = None
    provider: str | None = None
    delta: ChunkDelta | None = None
    finish_reason: str | None = None
    usage: ChatUsage | None = None
    cost_usd: float | None = None
    error: ErrorDetail | None = None
    cached: bool | None = None
    fallback_used: bool | None = None

    @property
    def text(self) -> str:
        return (self.delta.content or "") if self.delta is not None else ""
