"""Native chat (``POST /v1/chat``): one typed answer, or a typed stream ending in the usage chunk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from omnigate_sdk._base_client import RequestOptions
from omnigate_sdk._models.chat import ChatMessage, ChatResponse, MessageParam
from omnigate_sdk._resources._base import AsyncAPIResource, CallOptions, SyncAPIResource, request_options
from omnigate_sdk._streaming import AsyncChatStream, ChatStream

if TYPE_CHECKING:
    from typing_extensions import Unpack

Messages = Iterable[MessageParam | ChatMessage | Mapping[str, Any]]
BODY_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "fallback_models",
    "cache",
    "metadata",
)


class ChatParams(CallOptions, total=False):
    """Optional request fields of ``/v1/chat`` plus the per-call options; ``extra_body`` adds raw fields."""

    temperature: float
    top_p: float
    max_tokens: int
    stop: str | Sequence[str]
    tools: Sequence[Mapping[str, Any]]
    tool_choice: str | Mapping[str, Any]
    response_format: Mapping[str, Any]
    fallback_models: Sequence[str]
    cache: bool
    metadata: Mapping[str, Any]
    extra_body: Mapping[str, Any]


def _message(message: MessageParam | ChatMessage | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(message, ChatMessage):
        return message.model_dump(exclude_none=True)
    return dict(message)


def chat_options(
    model: str, messages: Messages, params: Mapping[str, Any], *, stream: bool
) -> RequestOptions:
    call = dict(params)
    body: dict[str, Any] = {"model": model, "messages": [_message(m) for m in messages]}
    for field in BODY_FIELDS:
        value = call.pop(field, None)
        if value is not None:
            body[field] = (
                list(value)
                if field in ("stop", "tools", "fallback_models") and not isinstance(value, str)
                else value
            )
    body.update(call.pop("extra_body", None) or {})
    if stream:
        body["stream"] = True
    # A chat is billed work: never repeated unless the caller asks (retry_non_idempotent or max_retries).
    return request_options("POST", "/v1/chat", call, idempotent=False, json=body, stream=stream)


class Chat(SyncAPIResource):
    def create(self, *, model: str, messages: Messages, **params: Unpack[ChatParams]) -> ChatResponse:
        """One whole answer."""
        response = self._client._send(chat_options(model, messages, params, stream=False))
        return self._client._parse(response, ChatResponse)

    def stream(self, *, model: str, messages: Messages, **params: Unpack[ChatParams]) -> ChatStream:
        """A streamed answer: ``with client.chat.stream(...) as stream: for chunk in stream: ...``."""
        return ChatStream(self._client._send(chat_options(model, messages, params, stream=True)))


class AsyncChat(AsyncAPIResource):
    async def create(self, *, model: str, messages: Messages, **params: Unpack[ChatParams]) -> ChatResponse:
        """One whole answer."""
        response = await self._client._send(chat_options(model, messages, params, stream=False))
        return self._client._parse(response, ChatResponse)

    async def stream(
        self, *, model: str, messages: Messages, **params: Unpack[ChatParams]
    ) -> AsyncChatStream:
        """A streamed answer: ``async with await client.chat.stream(...) as stream: async for chunk in stream``."""
        return AsyncChatStream(await self._client._send(chat_options(model, messages, params, stream=True)))
