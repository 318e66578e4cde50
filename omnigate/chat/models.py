"""Unified chat request and result types (attrs), in OpenAI's vocabulary where one exists."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import attrs

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@attrs.frozen
class TextPart:
    text: str
    type: Literal["text"] = "text"


@attrs.frozen
class ImageURL:
    url: str
    detail: Literal["auto", "low", "high"] | None = None


@attrs.frozen
class ImagePart:
    image_url: ImageURL
    type: Literal["image_url"] = "image_url"


ContentPart = TextPart | ImagePart


@attrs.frozen
class FunctionCall:
    name: str
    arguments: str


@attrs.frozen
class ToolCall:
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


@attrs.frozen
class Message:
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text parts joined (images dropped)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@attrs.frozen
class FunctionDefinition:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@attrs.frozen
class Tool:
    function: FunctionDefinition
    type: Literal["function"] = "function"


@attrs.frozen
class ChatRequest:
    """A validated chat request. ``raw`` is the client's body as sent (OpenAI-compatible upstreams get it)."""

    model: str
    messages: list[Message]
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    fallback_models: list[str] | None = None
    cache: bool | None = None
    metadata: dict[str, Any] | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def output_cap(self) -> int | None:
        """The client's cap on output tokens, whichever field carried it."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


@attrs.frozen
class Usage:
    """Token counts. ``input_tokens`` includes cache reads and writes; ``output_tokens`` includes reasoning."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# The OpenAI Chat Completions wire (JSON answers and stream events): ``Call.passthrough`` when the
# client speaks it.
OPENAI_CHAT = "openai-chat"


@attrs.frozen
class ChatResult:
    """A whole (non-streamed) answer from a provider.

    ``raw`` is the upstream's own response body when it is already in a client wire (``raw_wire``,
    offered when it is ``Call.passthrough``): sent as it is to a client speaking that wire. The other
    fields hold the same answer, parsed.
    """

    id: str
    model: str
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: Usage = Usage()
    raw: bytes = attrs.field(default=b"", repr=False)
    raw_wire: str | None = None


@attrs.frozen
class ToolCallDelta:
    """A piece of a streamed tool call: the first piece of each ``index`` carries ``id`` and ``name``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.frozen
class StreamChunk:
    """One unified stream event: text and/or tool-call pieces, a finish reason, or the usage.

    ``raw`` holds upstream events already in the client's wire (see ``Call.passthrough``), complete
    SSE events sent as they are instead of rendering ``text`` and ``tool_calls`` (left empty then);
    ``finish_reason`` still says whether one of them finished the answer.
    """

    text: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    raw: bytes = b""


def _no_usage() -> Usage | None:
    return None


@attrs.define
class ChatStream:
    """A provider's open stream: iterate it for chunks; ``aclose()`` releases the upstream connection.

    Iteration raises :class:`omnigate.errors.UpstreamError` when the upstream fails mid-stream.
    ``partial_usage()`` is the usage the upstream has reported so far (None if it reported none): what
    a stream cancelled or cut before its usage chunk is billed.
    """

    id: str
    model: str
    chunks: AsyncIterator[StreamChunk]
    close: Callable[[], Awaitable[None]]
    # OpenAI and Azure report usage only in their last event, so their streams keep this default.
    partial_usage: Callable[[], Usage | None] = _no_usage

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self.chunks

    async def aclose(self) -> None:
        await self.close()


@attrs.frozen
class Target:
    """Where one attempt goes: a provider and the model name that provider knows."""

    provider: str
    model: str


@attrs.frozen
class Credential:
    """The key an attempt authenticates with upstream; ``meta`` carries Azure's endpoint/deployment/version."""

    api_key: str = attrs.field(repr=False)
    meta: dict[str, Any] | None = None
    source: Literal["project", "gateway"] = "gateway"
