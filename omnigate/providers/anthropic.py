"""The Anthropic Messages provider (`anthropic`, models `claude-*`): JSON and SSE calls to /v1/messages."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import cast

import aiohttp

from omnigate import hookimpl
from omnigate.chat.models import ChatResult, ChatStream, Credential, StreamChunk
from omnigate.errors import UpstreamError
from omnigate.gateway.sse import SSEEvent, iter_sse_batches
from omnigate.gateway.streams import relay_stream
from omnigate.gateway.upstream import new_session, post, read_body
from omnigate.plugin.interfaces import Call, PluginContext
from omnigate.plugin.registry import ProviderRegistry
from omnigate.providers.anthropic_wire import (
    ANTHROPIC_VERSION,
    PROVIDER,
    StreamTranslator,
    bad_response,
    build_request,
    parse_response,
)
from omnigate.settings import Settings

MODEL_PREFIXES = ("claude-",)


class AnthropicProvider:
    """Calls ``{ANTHROPIC_BASE_URL}/v1/messages`` with ``x-api-key``; one aiohttp session per instance."""

    name = PROVIDER
    requires_credential = True

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = settings.anthropic_base_url.rstrip("/") + "/v1/messages"
        self._session = new_session(settings)

    def gateway_credential(self) -> Credential | None:
        key = self._settings.anthropic_api_key
        return Credential(key, source="gateway") if key else None

    async def send(self, call: Call, credential: Credential | None) -> ChatResult | ChatStream:
        credential = credential or self.gateway_credential()
        if credential is None:
            raise UpstreamError(
                "no Anthropic API key is configured (set ANTHROPIC_API_KEY or a project credential)",
                provider=PROVIDER,
                code="upstream_credential_missing",
            )
        stream = call.request.stream
        body = build_request(call.request, call.target.model)
        headers = {
            "x-api-key": credential.api_key,
            "anthropic-version": ANTHROPIC_VERSION,
            "accept": "text/event-stream" if stream else "application/json",
        }
        response = await post(
            self._session, PROVIDER, self._url, headers=headers, json_body=body, secrets=[credential.api_key]
        )
        if stream:
            if response.content_type == "application/json":
                response.close()
                raise bad_response("a JSON body where an event stream was requested")
            return _open_stream(response, call.target.model, f"msg_{call.request_id}")
        raw = await read_body(PROVIDER, response)
        return parse_response(raw, call.target.model)

    async def aclose(self) -> None:
        await self._session.close()


def _open_stream(response: aiohttp.ClientResponse, model: str, provisional_id: str) -> ChatStream:
    """The open stream; ``id``/``model`` are updated from ``message_start``."""
    translator = StreamTranslator(model)

    async def chunks() -> AsyncGenerator[StreamChunk, None]:
        yielded = False
        batches = cast(AsyncGenerator[list[SSEEvent], None], iter_sse_batches(response, PROVIDER))
        async with contextlib.aclosing(batches):
            async for events in batches:
                for event in events:
                    try:
                        chunk = translator.feed(event.event, event.data)
                    except UpstreamError as exc:
                        # Overloaded before anything reached the caller: a retry is still safe.
                        if exc.code == "overloaded_error" and not yielded:
                            exc.retryable = True
                        raise
                    if translator.id is not None and event.event == "message_start":
                        stream.id, stream.model = translator.id, translator.model
                    if chunk is not None:
                        yielded = True
                        yield chunk
                    if translator.done:
                        return
        raise UpstreamError(
            f"{PROVIDER} stream ended before message_stop",
            provider=PROVIDER,
            code="upstream_stream_truncated",
        )

    stream = relay_stream(response, chunks(), id=provisional_id, model=model)
    stream.partial_usage = translator.usage
    return stream


def build_provider(context: PluginContext) -> AnthropicProvider:
    return AnthropicProvider(context.settings)


@hookimpl
def omnigate_register_providers(registry: ProviderRegistry, settings: Settings) -> None:
    registry.add(PROVIDER, build_provider, model_prefixes=MODEL_PREFIXES)
