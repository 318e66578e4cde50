"""A policy that reads or changes the answer opts out of passthrough and gets it parsed, every time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import orjson

from omnigate import hookimpl
from omnigate.chat.models import ChatResult, ChatStream, StreamChunk
from omnigate.plugin.interfaces import Call, CallNext
from omnigate.plugin.registry import PolicyRegistry
from omnigate.settings import Settings
from omnigate.testing import Reply
from tests.chat.conftest import user
from tests.policies import resilience_fixtures
from tests.policies.resilience_fixtures import GatewayFactory

chat_env, fakes, make_gateway = (
    resilience_fixtures.chat_env,
    resilience_fixtures.fakes,
    resilience_fixtures.make_gateway,
)


class Redact:
    """Replaces "secret" in answers: it must see their text, so it turns passthrough off."""

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        call.passthrough = None
        result = await call_next(call)
        if isinstance(result, ChatResult):
            return attrs.evolve(result, content=(result.content or "").replace("secret", "[redacted]"))
        assert isinstance(result, ChatStream)
        result.chunks = self._redacted(result.chunks)
        return result

    async def _redacted(self, chunks: AsyncIterator[StreamChunk]) -> AsyncIterator[StreamChunk]:
        async for chunk in chunks:
            assert not chunk.raw, "a translated stream"
            yield attrs.evolve(chunk, text=chunk.text.replace("secret", "[redacted]") if chunk.text else None)


class RedactPlugin:
    @hookimpl
    def omnigate_register_policies(self, registry: PolicyRegistry, settings: Settings) -> None:
        registry.add("redact", lambda context: Redact(), after="retry")


async def test_a_policy_that_opts_out_gets_json_and_streams_parsed(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(plugins=[("redact", RedactPlugin())])
    fakes.openai.enqueue(Reply.text("the secret is out"))
    fakes.openai.enqueue(Reply.text(["the ", "secret", " is out"]))
    answer = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert answer.json()["choices"][0]["message"]["content"] == "the [redacted] is out"
    assert "system_fingerprint" not in answer.json()
    stream = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")], "stream": True})
    events = [orjson.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "the [redacted] is out"
    assert all("system_fingerprint" not in e for e in events)
