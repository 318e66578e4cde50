"""Fallback models: tried in order across providers after retries or an open breaker, before the first byte."""

from __future__ import annotations

from typing import Any

from omnigate import hookimpl
from omnigate.plugin.interfaces import Call, CallNext
from omnigate.plugin.registry import PolicyRegistry
from omnigate.settings import Settings
from omnigate.store.keys import create_key
from omnigate.testing import Reply
from tests.chat.conftest import user
from tests.policies import resilience_fixtures
from tests.policies.resilience_fixtures import GatewayFactory

# The fixtures these tests use (pytest finds fixtures among a module's attributes).
chat_env, fakes, make_gateway = (
    resilience_fixtures.chat_env,
    resilience_fixtures.fakes,
    resilience_fixtures.make_gateway,
)


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [user("x")],
        "fallback_models": ["claude-sonnet-4-5"],
        **extra,
    }


async def test_primary_503s_then_the_fallback_on_another_provider_answers(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="2")
    fakes.openai.set_default(Reply.error(503, "overloaded"))
    fakes.anthropic.enqueue(Reply.text("from claude"), Reply.text("from claude again"))
    native = await gateway.chat(body(), path="/v1/chat")
    assert native.status_code == 200
    answer = native.json()
    assert answer["fallback_used"] is True and answer["cached"] is False
    assert (answer["provider"], answer["model"]) == ("anthropic", "claude-sonnet-4-5")
    assert answer["message"]["content"] == "from claude"
    assert fakes.openai.request_count == 2 and fakes.anthropic.request_count == 1
    openai_surface = await gateway.chat(body())
    assert openai_surface.status_code == 200
    assert openai_surface.headers["x-omnigate-fallback-used"] == "true"
    assert openai_surface.headers["x-omnigate-provider"] == "anthropic"
    assert openai_surface.headers["x-omnigate-model"] == "claude-sonnet-4-5"
    rows = await gateway.usage_rows()
    assert [(r["provider"], r["fallback_used"], r["attempts"], r["status"]) for r in rows] == [
        ("anthropic", True, 3, "ok"),
        ("anthropic", True, 3, "ok"),
    ]


async def test_fallbacks_are_tried_in_order_and_a_healthy_primary_needs_none(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="1")
    healthy = await gateway.chat(body(fallback_models=["claude-sonnet-4-5", "gemini-2.5-flash"]))
    assert healthy.headers["x-omnigate-fallback-used"] == "false" and fakes.anthropic.request_count == 0
    fakes.openai.enqueue(Reply.error(500, "down"))
    fakes.anthropic.enqueue(Reply.error(529, "overloaded"))
    fakes.gemini.enqueue(Reply.text("gemini saves the day"))
    response = await gateway.chat(
        body(fallback_models=["claude-sonnet-4-5", "gemini-2.5-flash"]), path="/v1/chat"
    )
    assert response.json()["provider"] == "gemini" and response.json()["fallback_used"] is True
    assert (fakes.openai.request_count, fakes.anthropic.request_count, fakes.gemini.request_count) == (
        2,
        1,
        1,
    )


async def test_an_unroutable_fallback_is_a_400_naming_it_before_any_upstream_call(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    response = await gateway.chat(body(fallback_models=["claude-sonnet-4-5", "llama-3-70b"]))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "fallback_models[1]" and error["code"] == "model_not_found"
    assert "llama-3-70b" in error["message"] and fakes.total_requests() == 0
    too_many = await gateway.chat(body(fallback_models=["claude-sonnet-4-5"] * 6))
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "fallback_models"


async def test_a_fallback_model_the_key_may_not_use_is_refused(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    _, key = await create_key(gateway.runtime.db, gateway.tenant.project_id, "narrow", ["gpt-4o-mini"])
    response = await gateway.client.post(
        "/v1/chat/completions", json=body(), headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 403 and response.json()["error"]["param"] == "fallback_models[0]"
    assert fakes.total_requests() == 0


async def test_client_errors_never_fail_over(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.error(400, "invalid messages"))
    response = await gateway.chat(body())
    assert response.status_code == 400 and fakes.anthropic.request_count == 0


async def test_an_open_breaker_fails_over_at_once_without_touching_the_primary(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="1", CIRCUIT_BREAKER_FAILURE_THRESHOLD="2")
    fakes.openai.set_default(Reply.error(503, "down"))
    for _ in range(2):
        await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert fakes.openai.request_count == 2
    response = await gateway.chat(body(), path="/v1/chat")
    assert response.status_code == 200 and response.json()["provider"] == "anthropic"
    assert fakes.openai.request_count == 2 and fakes.anthropic.request_count == 1
    (row,) = [r for r in await gateway.usage_rows() if r["status"] == "ok"]
    assert row["attempts"] == 1 and row["fallback_used"] is True


async def test_streams_fail_over_before_the_first_byte_only(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="1")
    fakes.openai.enqueue(Reply.error(503, "busy"))
    fakes.anthropic.enqueue(Reply.text("streamed by claude"))
    response = await gateway.chat(body(stream=True))
    assert response.status_code == 200 and response.headers["x-omnigate-fallback-used"] == "true"
    assert "streamed" in response.text and "data: [DONE]" in response.text
    # After the first byte, a broken stream ends with an error event; the fallback is not called.
    fakes.openai.enqueue(Reply.text("one two three four", cut_after=2))
    broken = await gateway.chat(body(stream=True))
    assert '"error"' in broken.text and fakes.anthropic.request_count == 1


async def test_the_attempt_cap_spans_fallbacks(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="2", MAX_ATTEMPTS_PER_REQUEST="2")
    fakes.openai.set_default(Reply.error(502, "down"))
    response = await gateway.chat(body())
    assert response.status_code == 502
    assert fakes.openai.request_count == 2 and fakes.anthropic.request_count == 0


class TargetTagger:
    """A third-party policy inserted by name between the breaker and retry: it sees every target."""

    @hookimpl
    def omnigate_register_policies(self, registry: PolicyRegistry, settings: Settings) -> None:
        async def tag(call: Call, call_next: CallNext) -> Any:
            tried = call.state.setdefault("response_headers", {})
            tried["x-tried"] = ",".join(filter(None, [tried.get("x-tried"), call.target.provider]))
            return await call_next(call)

        registry.add("tagger", lambda context: tag, after="circuit_breaker")


async def test_the_order_is_explicit_third_parties_insert_by_name_and_blocking_removes_cleanly(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="2", plugins=[("tagger", TargetTagger())])
    names = [name for name, _ in gateway.runtime.plugins.policies]
    assert names[names.index("cache") :] == ["cache", "fallback", "circuit_breaker", "tagger", "retry"]
    fakes.openai.set_default(Reply.error(503, "down"))
    response = await gateway.chat(body())
    assert response.status_code == 200 and response.headers["x-tried"] == "openai,anthropic"
    assert fakes.openai.request_count == 2  # the tagger ran once per target, retry inside it
    blocked = await make_gateway(OMNIGATE_BLOCK_PLUGINS="cache,fallback,circuit_breaker,retry")
    names = [name for name, _ in blocked.runtime.plugins.policies]
    assert not {"cache", "fallback", "circuit_breaker", "retry"} & set(names)
    fakes.openai.set_default(None)
    plain = await blocked.chat(body(temperature=0, cache=True))
    assert plain.status_code == 200 and "x-omnigate-cache" not in plain.headers
    assert plain.headers["x-omnigate-provider"] == "openai"
