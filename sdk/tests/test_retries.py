"""Retries: backoff with jitter, Retry-After and x-should-retry honoured, non-idempotent calls left alone."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

import omnigate_sdk as og
from omnigate_sdk._base_client import BaseClient, parse_retry_after
from tests.conftest import Script, error, make_driver, ok

MODEL_LIST = {"object": "list", "data": [{"id": "gpt-4o-mini", "owned_by": "openai"}]}
CHAT = {
    "id": "c1",
    "request_id": "r1",
    "model": "gpt-4o-mini",
    "provider": "openai",
    "message": {"role": "assistant", "content": "hi"},
    "finish_reason": "stop",
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    "cost_usd": 0.000001,
}
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def chat(**params: object):
    return lambda c: c.chat.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], **params)


@MODES
async def test_idempotent_calls_retry_server_errors_with_growing_jittered_waits(
    script: Script, mode: str
) -> None:
    gw = make_driver(script, mode, max_retries=3, retry_base_delay=1.0, retry_max_delay=3.0)
    script.queue(error(500), error(502), error(503), ok(MODEL_LIST))
    models = await gw(lambda c: c.models.list())
    assert [m.id for m in models] == ["gpt-4o-mini"] and len(script.requests) == 4
    ceilings = [1.0, 2.0, 3.0]  # base × 2^attempt, capped at retry_max_delay
    assert all(c / 2 <= wait <= c for wait, c in zip(script.sleeps, ceilings, strict=True)), script.sleeps


@MODES
async def test_retries_stop_after_max_retries_and_raise_the_last_error(script: Script, mode: str) -> None:
    gw = make_driver(script, mode, max_retries=2)
    script.queue(error(503), error(503), error(504, "upstream_error", "upstream_timeout"))
    with pytest.raises(og.InternalServerError) as caught:
        await gw(lambda c: c.models.list())
    assert caught.value.status_code == 504 and len(script.requests) == 3 and len(script.sleeps) == 2


@MODES
async def test_max_retries_zero_turns_retries_off_per_client_and_per_call(script: Script, mode: str) -> None:
    gw = make_driver(script, mode, max_retries=0)
    script.queue(error(503))
    with pytest.raises(og.InternalServerError):
        await gw(lambda c: c.models.list())
    gw = make_driver(script, mode)
    script.queue(error(503))
    with pytest.raises(og.InternalServerError):
        await gw(lambda c: c.models.list(max_retries=0))
    assert len(script.requests) == 2 and script.sleeps == []


@MODES
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ],
)
async def test_retry_after_is_waited_exactly(
    script: Script, mode: str, headers: dict[str, str], expected: float
) -> None:
    gw = make_driver(script, mode)
    script.queue(error(429, "rate_limit_error", "rate_limit_exceeded", **headers), ok(MODEL_LIST))
    await gw(lambda c: c.models.list())
    assert script.sleeps == [expected]


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = parse_retry_after(httpx.Headers({"retry-after": when}))
    assert waited is not None and 28 <= waited <= 30
    assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx.Headers({"retry-after": "-5"})) == 0.0
    assert parse_retry_after(httpx.Headers({})) is None


@MODES
async def test_a_retry_after_longer_than_the_limit_raises_at_once(script: Script, mode: str) -> None:
    gw = make_driver(script, mode, max_retry_after=10)
    script.queue(error(429, "rate_limit_error", "rate_limit_exceeded", **{"retry-after": "3600"}))
    with pytest.raises(og.RateLimitError):
        await gw(lambda c: c.models.list())
    assert len(script.requests) == 1 and script.sleeps == []


@MODES
async def test_x_should_retry_overrides_the_status(script: Script, mode: str) -> None:
    gw = make_driver(script, mode)
    script.queue(error(503, **{"x-should-retry": "false"}))
    with pytest.raises(og.InternalServerError):
        await gw(lambda c: c.models.list())
    assert len(script.requests) == 1
    script.queue(error(400, "invalid_request_error", **{"x-should-retry": "true"}), ok(MODEL_LIST))
    await gw(lambda c: c.models.list())
    assert len(script.requests) == 3


@MODES
async def test_a_budget_refusal_is_never_retried(script: Script, mode: str) -> None:
    gw = make_driver(script, mode, retry_non_idempotent=True, max_retries=5)
    script.queue(error(429, "insufficient_quota", "budget_exceeded", **{"x-should-retry": "false"}))
    with pytest.raises(og.BudgetExceededError) as caught:
        await gw(chat())
    assert caught.value.code == "budget_exceeded" and len(script.requests) == 1


@MODES
async def test_client_errors_are_not_retried(script: Script, mode: str) -> None:
    gw = make_driver(script, mode)
    script.queue(error(404, "not_found_error"))
    with pytest.raises(og.NotFoundError):
        await gw(lambda c: c.models.retrieve("nope"))
    assert len(script.requests) == 1


@MODES
async def test_chat_is_not_retried_by_default(script: Script, mode: str) -> None:
    gw = make_driver(script, mode, max_retries=5)
    script.queue(error(503))
    with pytest.raises(og.InternalServerError):
        await gw(chat())
    script.queue(error(429, "rate_limit_error", "rate_limit_exceeded", **{"retry-after": "1"}))
    with pytest.raises(og.RateLimitError):
        await gw(chat())
    script.queue(httpx.ReadTimeout("the answer never came"))
    with pytest.raises(og.APITimeoutError):
        await gw(chat())
    script.queue(httpx.RemoteProtocolError("server disconnected"))
    with pytest.raises(og.APIConnectionError):
        await gw(chat())
    assert len(script.requests) == 4 and script.sleeps == []


@MODES
async def test_chat_retries_when_the_client_or_the_call_asks(script: Script, mode: str) -> None:
    gw = make_driver(script, mode, retry_non_idempotent=True)
    script.queue(error(503), ok(CHAT))
    assert (await gw(chat())).text == "hi"
    gw = make_driver(script, mode)
    script.queue(error(503), error(503), ok(CHAT))
    assert (await gw(chat(max_retries=2))).text == "hi"
    assert len(script.requests) == 5 and len(script.sleeps) == 3


@MODES
async def test_a_post_that_never_left_is_retried_even_by_default(script: Script, mode: str) -> None:
    gw = make_driver(script, mode)
    script.queue(httpx.ConnectError("refused"), httpx.ConnectTimeout("no route"), ok(CHAT))
    assert (await gw(chat())).text == "hi"
    assert len(script.requests) == 3 and len(script.sleeps) == 2


@MODES
async def test_key_creation_is_not_retried_but_revocation_and_credentials_are(
    script: Script, mode: str
) -> None:
    gw = make_driver(script, mode)
    script.queue(error(502))
    with pytest.raises(og.InternalServerError):
        await gw(lambda c: c.keys.create("ci"))
    script.queue(error(502), ok({"id": "key_1", "revoked_at": "2026-01-01T00:00:00Z"}))
    await gw(lambda c: c.keys.revoke("key_1"))
    script.queue(error(502), ok({"provider": "openai", "last4": "abcd"}))
    await gw(lambda c: c.credentials.put("openai", api_key="sk-secret-abcd"))
    script.queue(error(502))
    with pytest.raises(og.InternalServerError):
        await gw(lambda c: c.admin.orgs.create("acme"))
    script.queue(error(502), ok({"id": "org_1", "name": "acme"}))
    await gw(lambda c: c.admin.orgs.update("org_1", name="acme"))
    assert [r.method for r in script.requests] == [
        "POST",
        "DELETE",
        "DELETE",
        "PUT",
        "PUT",
        "POST",
        "PATCH",
        "PATCH",
    ]


@MODES
async def test_a_streamed_chat_is_not_retried_but_its_error_is_typed(script: Script, mode: str) -> None:
    gw = make_driver(script, mode, max_retries=3)
    script.queue(error(429, "rate_limit_error", "rate_limit_exceeded", **{"retry-after": "1"}))
    with pytest.raises(og.RateLimitError) as caught:
        await gw.stream(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert caught.value.request_id == "req-err" and len(script.requests) == 1


def test_backoff_is_capped_and_jittered() -> None:
    base = BaseClient(api_key="k", retry_base_delay=0.5, retry_max_delay=4.0)
    waits = [base._backoff(attempt) for attempt in range(8) for _ in range(20)]
    assert all(0.25 <= w <= 4.0 for w in waits)
    assert len({round(w, 6) for w in waits}) > 100  # jitter: not the same value twice
    assert max(base._backoff(7) for _ in range(50)) <= 4.0
