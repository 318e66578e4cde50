"""The Ollama provider: POST {OLLAMA_BASE_URL}/api/chat, one JSON answer or an NDJSON stream relayed as it arrives."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import aiohttp
from omnigate.chat.models import ChatResult, ChatStream, Credential, StreamChunk
from omnigate.errors import UpstreamError
from omnigate.gateway.pacing import iter_body
from omnigate.gateway.streams import relay_stream
from omnigate.gateway.upstream import TRANSPORT_ERRORS, new_session, post, read_body, transport_error
from omnigate.plugin.interfaces import Call
from omnigate.settings import Settings

from omnigate_ollama.config import OllamaConfig
from omnigate_ollama.wire import PROVIDER, StreamTranslator, bad_response, build_request, parse_response

# A single NDJSON object larger than this is refused rather than buffered without bound.
MAX_LINE_BYTES = 16 * 1024 * 1024


class OllamaProvider:
    """One aiohttp session per app run. No credential is needed; the one omnigate resolves (OLLAMA_API_KEY,
    or a project's own where the gateway stores one for this provider) is sent as a Bearer token."""

    name = PROVIDER
    requires_credential = False

    def __init__(self, settings: Settings, config: OllamaConfig) -> None:
        self._config = config
        self._url = config.base_url + "/api/chat"
        self._session = new_session(settings)

    def gateway_credential(self) -> Credential | None:
        key = self._config.api_key
        return Credential(key, source="gateway") if key else None

    async def send(self, call: Call, credential: Credential | None) -> ChatResult | ChatStream:
        stream = call.request.stream
        body = build_request(call.request, call.target.model, self._config.keep_alive)
        headers = {"accept": "application/x-ndjson" if stream else "application/json"}
        secrets: tuple[str | None, ...] = ()
        if credential is not None and credential.api_key:
            headers["authorization"] = f"Bearer {credential.api_key}"
            secrets = (credential.api_key,)
        response = await post(
            self._session, PROVIDER, self._url, headers=headers, json_body=body, secrets=secrets
        )
        response_id = f"ollama-{call.request_id}"
        if stream:
            return _open_stream(response, call.target.model, response_id, secrets)
        raw = await read_body(PROVIDER, response)
        return parse_response(raw, call.target.model, response_id)

    async def aclose(self) -> None:
        await self._session.close()


async def iter_lines(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    """Non-empty NDJSON lines as they arrive; a last line without its newline is still delivered."""
    buffer = b""
    try:
        async for piece in iter_body(response):  # lets the gateway send a burst of lines at once
            buffer += piece
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield line
            if len(buffer) > MAX_LINE_BYTES:
                raise bad_response(f"a stream line is longer than {MAX_LINE_BYTES} bytes")
    except TRANSPORT_ERRORS as exc:
        raise transport_error(PROVIDER, exc, started=True) from None
    if buffer.strip():
        yield buffer


def _open_stream(
    response: aiohttp.ClientResponse, model: str, response_id: str, secrets: tuple[str | None, ...]
) -> ChatStream:
    """The open NDJSON stream; ``stream.model`` follows the model name Ollama reports."""
    translator = StreamTranslator(model, secrets)

    async def chunks() -> AsyncGenerator[StreamChunk, None]:
        lines = iter_lines(response)
        async with contextlib.aclosing(lines):
            async for line in lines:
                for chunk in translator.feed(line):
                    stream.model = translator.model
                    yield chunk
                if translator.done:
                    return
        # The body ended without the "done": true object: a broken stream, never a clean end.
        raise UpstreamError(
            f"{PROVIDER} stream ended before its final (done) object",
            provider=PROVIDER,
            code="upstream_stream_truncated",
        )

    stream = relay_stream(response, chunks(), id=response_id, model=model)
    return stream
