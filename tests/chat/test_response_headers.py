"""The gateway's own response headers, and a policy's named headers beside (or instead of) them."""

from __future__ import annotations

from omnigate.chat.models import Target
from omnigate.chat.validate import parse_chat_request
from omnigate.gateway.dispatch import ChatEndpoint
from omnigate.plugin.interfaces import RESPONSE_HEADER_PAIRS, RESPONSE_HEADERS, Call
from omnigate.surfaces.base import Reply
from omnigate.surfaces.openai import OpenAISurface


def headers_of(state: dict[str, object], fallback_used: bool = False) -> list[tuple[bytes, bytes]]:
    request = parse_chat_request({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    call = Call("req_1", None, request, Target("openai", "gpt-4o-mini"), 1e12)
    call.state.update(state)
    reply = Reply("req_1", "id", "gpt-4o-mini", "openai", 0, fallback_used=fallback_used)
    return ChatEndpoint(None, OpenAISurface())._headers(call, reply)  # type: ignore[arg-type]


def test_provider_model_and_fallback_headers_then_the_policies() -> None:
    assert headers_of({}) == [
        (b"x-omnigate-provider", b"openai"),
        (b"x-omnigate-model", b"gpt-4o-mini"),
        (b"x-omnigate-fallback-used", b"false"),
    ]
    pairs = [(b"x-ratelimit-limit-requests", b"3")]
    named = {"X-Omnigate-Cache": "hit", "x-omnigate-model": "gpt-4o-mini-2024-07-18"}
    assert headers_of({RESPONSE_HEADERS: named, RESPONSE_HEADER_PAIRS: pairs}, fallback_used=True) == [
        (b"x-omnigate-provider", b"openai"),
        (b"x-omnigate-fallback-used", b"true"),
        (b"x-omnigate-cache", b"hit"),
        (b"x-omnigate-model", b"gpt-4o-mini-2024-07-18"),  # a policy's header replaces the gateway's
        (b"x-ratelimit-limit-requests", b"3"),
    ]
