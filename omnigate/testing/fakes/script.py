"""Provider-neutral scripting vocabulary for fake upstreams: Reply, Usage, ToolCall, RecordedRequest."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

__all__ = [
    "DEFAULT_INPUT_OVERHEAD",
    "Call",
    "FINISH_REASONS",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "Usage",
    "count_words",
    "default_usage",
    "split_arguments",
    "split_text",
]

#: Fixed number of tokens added to the word count of a request by the default usage formula.
DEFAULT_INPUT_OVERHEAD = 10

#: Provider-neutral finish reasons; any other string is passed to the wire verbatim.
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")

ReplyKind = Literal["text", "tool_calls", "error", "raw"]


def _headers(value: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((value or {}).items())


@attrs.frozen
class Usage:
    """Token usage, in OpenAI's conventions (each fake converts to its provider's fields).

    ``input`` is the whole prompt *including* ``cache_read`` and ``cache_write`` tokens;
    ``output`` is the whole completion *including* ``reasoning`` tokens. So: OpenAI
    ``prompt_tokens = input``; Anthropic ``input_tokens = input - cache_read - cache_write``;
    Gemini ``promptTokenCount = input``, ``candidatesTokenCount = output - reasoning``,
    ``thoughtsTokenCount = reasoning``. Mapping any fake's usage back to OpenAI terms
    (as a gateway does) gives these numbers again. ``cache_write`` only shows on the wire
    for Anthropic (``cache_creation_input_tokens``); elsewhere it is just part of ``input``.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output

    @property
    def uncached_input(self) -> int:
        return max(0, self.input - self.cache_read - self.cache_write)

    @property
    def visible_output(self) -> int:
        return max(0, self.output - self.reasoning)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.reasoning + other.reasoning,
        )


@attrs.frozen
class ToolCall:
    """One function call the model makes; ``arguments_json`` is the JSON-encoded argument object."""

    id: str
    name: str
    arguments_json: str = "{}"

    @classmethod
    def of(cls, id: str, name: str, arguments: Mapping[str, Any]) -> ToolCall:
        """Build a call from an argument mapping instead of a JSON string."""
        return cls(id, name, json.dumps(dict(arguments)))

    def arguments(self) -> Any:
        """The parsed arguments (Anthropic ``input`` / Gemini ``args`` need an object)."""
        return json.loads(self.arguments_json)


@attrs.frozen
class Reply:
    """What the next request gets. Build with ``Reply.text`` / ``tool_calls`` / ``error`` / ``raw``.

    Timing and fault options (all constructors): ``delay_s`` sleeps before the response
    headers; ``hang`` never answers (until the client gives up or the fake closes);
    ``headers`` adds response headers. Streaming options: ``chunk_delay_s`` sleeps between
    stream events; ``cut_after=N`` sends at most N events (never the terminal one) and then
    closes the connection without ending the chunked body, so clients see a broken stream
    (for a non-streaming request, half the JSON body is sent before the close);
    ``stall_after=N`` sends N events and then keeps the connection open silently (for a
    non-streaming request: the headers, then nothing);
    ``error_after=N`` sends N events, then the provider's mid-stream error event (using
    ``message``/``error_type`` when given) and ends the stream; ``end_delay_s`` sleeps
    between the last event and the end of the body (the chunked terminator), as upstreams
    behind proxies or slow generator shutdowns do.
    """

    kind: ReplyKind
    text_value: str | None = None
    chunks: tuple[str, ...] | None = None
    calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    stop_sequence: str | None = None
    model: str | None = None
    status: int = 200
    message: str | None = None
    error_type: str | None = None
    code: str | None = None
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    body: bytes | None = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    cut_after: int | None = None
    stall_after: int | None = None
    error_after: int | None = None
    end_delay_s: float = 0.0
    hang: bool = False

    @classmethod
    def text(
        cls,
        text: str | Sequence[str],
        *,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        stop_sequence: str | None = None,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        cut_after: int | None = None,
        stall_after: int | None = None,
        error_after: int | None = None,
        end_delay_s: float = 0.0,
        message: str | None = None,
        error_type: str | None = None,
        hang: bool = False,
    ) -> Reply:
        """A text answer. A sequence of strings fixes the stream pieces (joined for JSON)."""
        chunks = None if isinstance(text, str) else tuple(text)
        value = text if isinstance(text, str) else "".join(text)
        return cls(
            kind="text",
            text_value=value,
            chunks=chunks,
            usage=usage,
            finish_reason=finish_reason,
            stop_sequence=stop_sequence,
            model=model,
            message=message,
            error_type=error_type,
            headers=_headers(headers),
            delay_s=delay_s,
            chunk_delay_s=chunk_delay_s,
            cut_after=cut_after,
            stall_after=stall_after,
            error_after=error_after,
            end_delay_s=end_delay_s,
            hang=hang,
        )

    @classmethod
    def tool_calls(
        cls,
        calls: Sequence[ToolCall],
        *,
        text: str | None = None,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        cut_after: int | None = None,
        stall_after: int | None = None,
        error_after: int | None = None,
        end_delay_s: float = 0.0,
        message: str | None = None,
        error_type: str | None = None,
        hang: bool = False,
    ) -> Reply:
        """One or more (parallel) function calls, optionally preceded by some text."""
        return cls(
            kind="tool_calls",
            text_value=text,
            calls=tuple(calls),
            usage=usage,
            finish_reason=finish_reason,
            model=model,
            message=message,
            error_type=error_type,
            headers=_headers(headers),
            delay_s=delay_s,
            chunk_delay_s=chunk_delay_s,
            cut_after=cut_after,
            stall_after=stall_after,
            error_after=error_after,
            end_delay_s=end_delay_s,
            hang=hang,
        )

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "fake upstream error",
        *,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        error_type: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
        hang: bool = False,
    ) -> Reply:
        """An HTTP error in the provider's error format.

        ``error_type`` overrides the provider's type for the status (OpenAI ``type``,
        Anthropic ``error.type``, Gemini ``status``); ``code`` overrides OpenAI/Azure
        ``code`` (``""`` forces null) and becomes a Gemini ``ErrorInfo.reason``.
        ``retry_after`` (seconds, or a raw string such as an HTTP date) and
        ``retry_after_ms`` set the ``retry-after`` / ``retry-after-ms`` headers (Gemini also
        gets a ``RetryInfo`` detail).
        """
        return cls(
            kind="error",
            status=status,
            message=message,
            error_type=error_type,
            code=code,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            headers=_headers(headers),
            delay_s=delay_s,
            hang=hang,
        )

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
        cut_after: int | None = None,
        stall_after: int | None = None,
        hang: bool = False,
    ) -> Reply:
        """Exactly this status and body (malformed or hostile responses); ``cut_after`` halves it."""
        data = body.encode() if isinstance(body, str) else body
        return cls(
            kind="raw",
            status=status,
            body=data,
            content_type=content_type,
            headers=_headers(headers),
            delay_s=delay_s,
            cut_after=cut_after,
            stall_after=stall_after,
            hang=hang,
        )

    def finish(self) -> str:
        """The neutral (or verbatim) finish reason: explicit, else by kind."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.kind == "tool_calls" else "stop"

    def stream_pieces(self) -> list[str]:
        """Text split into stream pieces (word by word unless ``chunks`` was given)."""
        if self.chunks is not None:
            return [c for c in self.chunks if c]
        return split_text(self.text_value or "")

    def retry_headers(self) -> dict[str, str]:
        """``retry-after`` / ``retry-after-ms`` headers when set."""
        out: dict[str, str] = {}
        if self.retry_after is not None:
            out["retry-after"] = _num(self.retry_after)
        if self.retry_after_ms is not None:
            out["retry-after-ms"] = _num(self.retry_after_ms)
        return out


def _num(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


@attrs.define
class RecordedRequest:
    """One request the fake received, and what became of it.

    ``headers`` keys are lower-case; ``json`` is the parsed body (None if not JSON).
    ``peer`` is the client's (host, port), one per connection. Outcome: ``reply`` served,
    ``status`` sent (None if headers never went out), ``events_sent`` stream events,
    ``completed`` (the whole response was written), ``cut`` (the fake closed the
    connection on purpose), ``disconnected`` (the client went away first), ``usage``
    (what a completed successful response reported; the ``billed`` ledger sums these).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body: bytes
    peer: tuple[str, int] | None = None
    stream: bool = False
    reply: Reply | None = None
    status: int | None = None
    events_sent: int = 0
    usage: Usage | None = None
    completed: bool = False
    cut: bool = False
    disconnected: bool = False


@attrs.frozen
class Call:
    """Everything a renderer needs for one successful model call."""

    record: RecordedRequest
    reply: Reply
    model: str
    stream: bool
    usage: Usage
    seq: int
    include_usage: bool = False
    extra: dict[str, Any] = attrs.field(factory=dict)


def count_words(text: str) -> int:
    return len(text.split())


def split_text(text: str) -> list[str]:
    """Split text into word pieces whose concatenation is the text (whitespace stays attached)."""
    if not text:
        return []
    return [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]


def split_arguments(arguments: str, parts: int = 3) -> list[str]:
    """Split a JSON string into up to ``parts`` fragments (streamed tool-call arguments)."""
    if not arguments:
        return []
    size = max(1, -(-len(arguments) // parts))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def default_usage(request_texts: Sequence[str], reply: Reply) -> Usage:
    """The deterministic usage used when a reply has none.

    ``input = DEFAULT_INPUT_OVERHEAD + whitespace words in the request's message texts``
    (system and user/assistant text only; tool calls and tool results are not counted, so a
    conversation counts the same in every provider's format); ``output = words in the answer
    text + for each tool call (1 + words in its arguments_json)``.
    """
    input_tokens = DEFAULT_INPUT_OVERHEAD + sum(count_words(t) for t in request_texts)
    output = count_words(reply.text_value or "")
    output += sum(1 + count_words(c.arguments_json) for c in reply.calls)
    return Usage(input=input_tokens, output=output)
