"""The Gemini provider (v1beta generateContent / streamGenerateContent?alt=sse), registered as ``gemini``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp
import orjson

from omnigate import hookimpl
from omnigate.chat.models import ChatResult, ChatStream, Credential, StreamChunk
from omnigate.errors import UpstreamError
from omnigate.gateway.sse import iter_sse_batches
from omnigate.gateway.streams import relay_stream
from omnigate.gateway.upstream import new_session, post, read_body
from omnigate.plugin.interfaces import Call, PluginContext
from omnigate.providers.gemini_wire import StreamTranslator, bad_response, build_request, parse_response
from omnigate.settings import Settings

if TYPE_CHECKING:
    from omnigate.plugin.registry import ProviderRegistry

NAME = "gemini"
MODEL_PREFIXES = ("gemini-",)


class GeminiProvider:
    """Talks to ``{gemini_base_url}/v1beta``; the key goes in ``x-goog-api-key``, never in the URL."""

    name = NAME
    requires_credential = True

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._base_url = settings.gemini_base_url.rstrip("/")
        self._session = new_session(settings)

    @classmethod
    def from_context(cls, context: PluginContext) -> GeminiProvider:
        return cls(context.settings)

    def gateway_credential(self) -> Credential | None:
        key = self._settings.gemini_api_key
        return Credential(api_key=key, source="gateway") if key else None

    def url(self, model: str, stream: bool) -> str:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self._base_url}/v1beta/models/{quote(model, safe='')}:{method}"

    async def send(self, call: Call, credential: Credential | None) -> ChatResult | ChatStream:
        credential = credential or self.gateway_credential()
        if credential is None:
            raise UpstreamError(
                f"no {NAME} credential is configured", provider=NAME, code="provider_not_configured"
            )
        body = build_request(call.request)
        model = call.target.model
        secrets = [credential.api_key]
        response = await post(
            self._session,
            NAME,
            self.url(model, call.request.stream),
            headers={"x-goog-api-key": credential.api_key},
            json_body=body,
            secrets=secrets,
        )
        if call.request.stream:
            return _open_stream(response, model, secrets)
        raw = await read_body(NAME, response)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise bad_response("body is not JSON") from None
        return parse_response(doc, model, secrets)

    async def aclose(self) -> None:
        await self._session.close()


def _open_stream(response: aiohttp.ClientResponse, model: str, secrets: list[str]) -> ChatStream:
    translator = StreamTranslator(secrets)

    async def chunks() -> AsyncGenerator[StreamChunk, None]:
        async for events in iter_sse_batches(response, NAME):
            for event in events:
                if not event.data.strip():
                    continue
                try:
                    doc = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    raise bad_response("stream event is not JSON") from None
                chunk = translator.feed(doc)
                if chunk is not None:
                    yield chunk
        # Gemini has no end sentinel: only a finishReason tells a finished answer from a dropped connection.
        if not translator.finished:
            raise UpstreamError(
                f"{NAME} stream ended before any finish reason (connection closed early)",
                provider=NAME,
                code="upstream_stream_truncated",
            )
        if translator.usage is not None:
            yield StreamChunk(usage=translator.usage)

    stream = relay_stream(response, chunks(), id=f"gemini-{uuid.uuid4().hex}", model=model)
    stream.partial_usage = translator.reported
    return stream


@hookimpl
def omnigate_register_providers(registry: ProviderRegistry, settings: Settings) -> None:
    registry.add(NAME, GeminiProvider.from_context, model_prefixes=MODEL_PREFIXES)
