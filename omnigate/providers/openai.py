"""The OpenAI provider: Chat Completions over aiohttp, the client's body forwarded nearly as sent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import aiohttp

from omnigate import hookimpl
from omnigate.chat.models import OPENAI_CHAT, ChatResult, ChatStream, Credential, StreamChunk
from omnigate.errors import InvalidRequestError
from omnigate.gateway.sse import SSEEvent, iter_sse_batches
from omnigate.gateway.streams import relay_stream
from omnigate.gateway.upstream import new_session, post, read_body
from omnigate.plugin.interfaces import Call, PluginContext
from omnigate.plugin.registry import ProviderRegistry
from omnigate.providers.openai_passthrough import passthrough_chunks
from omnigate.providers.openai_wire import StreamParser, parse_result, request_body
from omnigate.settings import Settings

# The contract's o<digit>* rule, as plain prefixes.
MODEL_PREFIXES = ("gpt-", "chatgpt-", *(f"o{digit}" for digit in range(1, 10)))


def not_configured(provider: str, what: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"provider {provider} is not configured: {what}", code="provider_not_configured", param="model"
    )


class OpenAIProvider:
    """``POST {openai_base_url}/chat/completions`` with a Bearer key; Azure subclasses it."""

    name = "openai"
    requires_credential = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session = new_session(settings)

    def gateway_credential(self) -> Credential | None:
        key = self.settings.openai_api_key
        return Credential(api_key=key, source="gateway") if key else None

    def endpoint(self, call: Call, credential: Credential) -> tuple[str, dict[str, str]]:
        """The URL and auth headers of one attempt."""
        url = self.settings.openai_base_url.rstrip("/") + "/chat/completions"
        return url, {"authorization": f"Bearer {credential.api_key}"}

    def body(self, call: Call) -> dict[str, Any]:
        return request_body(call.request, call.target.model)

    async def send(self, call: Call, credential: Credential | None) -> ChatResult | ChatStream:
        if credential is None or not credential.api_key:
            raise not_configured(self.name, "no API key")
        url, headers = self.endpoint(call, credential)
        secrets = (credential.api_key,)
        response = await post(
            self.session, self.name, url, headers=headers, json_body=self.body(call), secrets=secrets
        )
        if call.request.stream:
            return open_stream(
                self.name, response, call.target.model, secrets, call.passthrough == OPENAI_CHAT
            )
        data = await read_body(self.name, response)
        return parse_result(self.name, data, call.target.model, call.passthrough)

    async def aclose(self) -> None:
        await self.session.close()


def open_stream(
    provider: str,
    response: aiohttp.ClientResponse,
    model: str,
    secrets: Sequence[str],
    passthrough: bool = False,
) -> ChatStream:
    """Wrap an open 200 SSE response; ``id`` and ``model`` are set to the upstream's before the first chunk.

    With ``passthrough`` (an OpenAI client) the upstream's events go out as they are (raw chunks).
    """
    parser = StreamParser(provider, secrets)

    def named(completion_id: str, upstream_model: str | None) -> None:
        stream.id = completion_id
        stream.model = upstream_model or stream.model

    if passthrough:
        # The completion id arrives with the first chunk; until then it is unknown ("").
        stream = relay_stream(
            response, passthrough_chunks(provider, response, parser, named), id="", model=model
        )
        return stream

    async def generate() -> AsyncGenerator[StreamChunk, None]:
        first = True
        batches = cast(AsyncGenerator[list[SSEEvent], None], iter_sse_batches(response, provider))
        async with contextlib.aclosing(batches):
            async for events in batches:
                for event in events:
                    chunk = parser.feed(event.data)
                    if chunk is not None:
                        if first:
                            named(parser.id or stream.id, parser.model)
                            first = False
                        yield chunk
                    if parser.done:
                        break
                if parser.done:
                    break
        final = parser.final()
        if final is not None:
            yield final

    stream = relay_stream(response, generate(), id="", model=model)
    return stream


@hookimpl
def omnigate_register_providers(registry: ProviderRegistry, settings: Settings) -> None:
    registry.add("openai", _factory, model_prefixes=MODEL_PREFIXES)


def _factory(context: PluginContext) -> OpenAIProvider:
    return OpenAIProvider(context.settings)
