"""Retry policy: full-jitter backoff, Retry-After, bounded attempts, and streams retried only before the first byte."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest

from omnigate.chat.models import Target
from omnigate.chat.validate import parse_chat_request
from omnigate.errors import UpstreamError
from omnigate.gateway.upstream import parse_retry_after, retry_delay_from_body, status_error
from omnigate.plugin.interfaces import Call
from omnigate.policies.retry import RetryPolicy
from omnigate.testing import Reply
from tests.chat.conftest import user
from tests.policies import resilience_fixtures
from tests.policies.resilience_fixtures import GatewayFactory, RecordingSleep, policy

# The fixtures these tests use (pytest finds fixtures among a module's attributes).
chat_env, fakes, make_gateway = (
    resilience_fixtures.chat_env,
    resilience_fixtures.fakes,
    resilience_fixtures.make_gateway,
)


def make_call(deadline_in_s: float = 60.0, now: float = 1000.0) -> Call:
    request = parse_chat_request({"model": "gpt-4o-mini", "messages": [user("x")]})
    return Call("r", None, request, Target("openai", "gpt-4o-mini"), deadline=now + deadline_in_s)


def retryable(retry_after_s: float | None = None) -> UpstreamError:
    return UpstreamError("boom", status=503, retryable=True, retry_after_s=retry_after_s)


def unit_policy(**overrides: Any) -> RetryPolicy:
    options: dict[str, Any] = {
        "max_attempts": 4,
        "base_delay_s": 0.25,
        "max_delay_s": 8.0,
        "max_attempts_per_request": 6,
        "clock": lambda: 1000.0,
    }
    return RetryPolicy(**{**options, **overrides})


def test_backoff_is_full_jitter_under_an_exponential_ceiling_capped_by_the_max_delay() -> None:
    top = unit_policy(random=lambda: 0.999999)
    assert [round(top.backoff(i), 3) for i in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert unit_policy(random=lambda: 0.0).backoff(5) == 0.0
    assert top.backoff(10_000) <= 8.0  # no overflow however many retries


def test_retry_decisions_follow_retryability_retry_after_attempts_and_deadline() -> None:
    policy_ = unit_policy(random=lambda: 0.5)
    call = make_call()
    assert policy_.delay_before_retry(UpstreamError("bad request", status=400), 1, call) is None
    assert policy_.delay_before_retry(retryable(), 1, call) == 0.125
    assert policy_.delay_before_retry(retryable(retry_after_s=2.0), 1, call) == 2.0
    # A wait longer than the cap is not slept: the error goes up now, telling the client how long.
    long_wait = retryable(retry_after_s=120.0)
    assert policy_.delay_before_retry(long_wait, 1, call) is None
    assert long_wait.headers["retry-after"] == "120"
    # This target's attempts, the request's attempts, and its deadline all bound retries.
    assert policy_.delay_before_retry(retryable(), 4, call) is None
    call.attempts = 6
    assert policy_.delay_before_retry(retryable(), 1, call) is None
    assert policy_.delay_before_retry(retryable(retry_after_s=5.0), 1, make_call(deadline_in_s=4.0)) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500", "retry-after": "3"}, 1.5),
        ({"retry-after": "Thu, 01 Jan 1970 00:20:00 GMT"}, 200.0),
        ({"retry-after": "Thu, 01 Jan 1970 00:00:10 GMT"}, 0.0),  # a date already past: now
        ({"retry-after": "Sat, 01 Jan 2000 00:00:00 GMT"}, 86_400.0),  # far off: bounded, still too long
        # Not a finite, non-negative number: as if the header were not sent.
        ({"retry-after": "inf"}, None),
        ({"retry-after": "1e999"}, None),
        ({"retry-after": "Infinity"}, None),
        ({"retry-after": "-inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after-ms": "inf"}, None),
        ({"retry-after-ms": "1e999", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "-1", "retry-after": "nan"}, None),
    ],
)
def test_parse_retry_after_ignores_values_that_are_not_finite_non_negative_numbers(
    headers: dict[str, str], expected: float | None
) -> None:
    assert parse_retry_after(headers, now=1000.0) == expected


def test_a_huge_finite_retry_after_is_bounded_and_renders_a_sane_header() -> None:
    for headers in ({"retry-after": "1e300"}, {"retry-after-ms": "1e308"}):
        delay = parse_retry_after(headers)
        assert delay is not None and 8.0 < delay <= 86_400.0
        error = status_error("openai", 429, headers, "slow down")
        assert error.headers["retry-after"] == str(round(delay)) and len(error.headers["retry-after"]) <= 5


@pytest.mark.parametrize("delay", ["infs", "nans", "-3s", "1e999s"])
def test_a_non_finite_retry_delay_in_a_gemini_body_is_ignored(delay: str) -> None:
    body = {
        "error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}
    }
    assert retry_delay_from_body(orjson.dumps(body)) is None


@pytest.mark.parametrize("wait", [math.inf, -math.inf, math.nan, -1.0])
def test_the_policy_treats_a_non_finite_or_negative_wait_as_absent(wait: float) -> None:
    # A provider plugin may set retry_after_s itself: such a value means "no wait given", so backoff.
    error = retryable(retry_after_s=wait)
    assert unit_policy(random=lambda: 0.5).delay_before_retry(error, 1, make_call()) == 0.125
    assert unit_policy().delay_before_retry(error, 4, make_call()) is None
    assert "retry-after" not in error.headers


async def test_500_then_200_is_one_retry_one_success_one_usage_record(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    sleep = policy(gateway, "retry").sleep = RecordingSleep()
    fakes.openai.enqueue(Reply.error(500, "transient"), Reply.text("recovered"))
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "recovered"
    assert fakes.openai.request_count == 2 and len(sleep.waits) == 1
    (row,) = await gateway.usage_rows()
    assert row["status"] == "ok" and row["attempts"] == 2 and row["cost_micros"] > 0


async def test_retry_after_is_honoured_through_the_injected_sleep(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    sleep = policy(gateway, "retry").sleep = RecordingSleep()
    fakes.anthropic.enqueue(Reply.error(429, "slow down", retry_after=1), Reply.text("ok"))
    fakes.gemini.enqueue(Reply.error(503, "busy", retry_after_ms=1500), Reply.text("ok"))
    assert (await gateway.chat({"model": "claude-sonnet-4-5", "messages": [user("x")]})).status_code == 200
    assert (await gateway.chat({"model": "gemini-2.5-flash", "messages": [user("x")]})).status_code == 200
    assert sleep.waits == [1.0, 1.5]


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
async def test_retry_after_one_second_really_waits_about_a_second(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.error(429, "slow down", retry_after=1), Reply.text("ok"))
    started = time.monotonic()
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and fakes.openai.request_count == 2
    assert 0.9 <= elapsed < 3.0


@pytest.mark.parametrize("status", [429, 503])
async def test_a_retry_after_above_the_cap_fails_fast_with_the_upstream_status_and_wait(
    make_gateway: GatewayFactory, fakes: Any, status: int
) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.error(status, "come back later", retry_after=120), Reply.text("too late"))
    started = time.monotonic()
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert time.monotonic() - started < 5.0
    assert response.status_code == status and response.headers["retry-after"] == "120"
    assert fakes.openai.request_count == 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (429, {"retry-after": "inf"}),
        (429, {"retry-after": "1e999"}),
        (503, {"retry-after": "Infinity"}),
        (503, {"retry-after-ms": "inf"}),
        (429, {"retry-after-ms": "nan"}),
        (503, {"retry-after-ms": "nan"}),
    ],
)
async def test_a_non_finite_retry_after_is_ignored_and_the_normal_backoff_retries(
    make_gateway: GatewayFactory, fakes: Any, status: int, headers: dict[str, str]
) -> None:
    gateway = await make_gateway()
    sleep = policy(gateway, "retry").sleep = RecordingSleep()
    fakes.openai.enqueue(Reply.error(status, "busy", headers=headers), Reply.text("recovered"))
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "recovered"
    assert fakes.openai.request_count == 2
    assert len(sleep.waits) == 1 and 0.0 <= sleep.waits[0] <= 0.001  # full jitter under the 1 ms base


@pytest.mark.parametrize("headers", [{"retry-after": "inf"}, {"retry-after-ms": "nan"}])
async def test_a_non_finite_retry_after_that_keeps_failing_moves_to_the_fallback(
    make_gateway: GatewayFactory, fakes: Any, headers: dict[str, str]
) -> None:
    gateway = await make_gateway()
    policy(gateway, "retry").sleep = RecordingSleep()
    fakes.openai.set_default(Reply.error(429, "busy", headers=headers))
    fakes.anthropic.enqueue(Reply.text("from claude"))
    body = {"model": "gpt-4o-mini", "messages": [user("x")], "fallback_models": ["claude-sonnet-4-5"]}
    response = await gateway.chat(body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "from claude"
    assert fakes.openai.request_count == 3 and fakes.anthropic.request_count == 1
    (row,) = await gateway.usage_rows()
    assert (row["provider"], row["fallback_used"], row["status"]) == ("anthropic", True, "ok")


@pytest.mark.parametrize("status", [429, 503])
async def test_a_huge_finite_retry_after_fails_fast_like_any_wait_over_the_cap(
    make_gateway: GatewayFactory, fakes: Any, status: int
) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.error(status, "come back much later", retry_after="1e300"), Reply.text("no"))
    started = time.monotonic()
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert time.monotonic() - started < 5.0
    assert response.status_code == status and fakes.openai.request_count == 1
    assert 8 < int(response.headers["retry-after"]) <= 86_400


async def test_a_huge_finite_retry_after_moves_to_the_fallback_at_once(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    sleep = policy(gateway, "retry").sleep = RecordingSleep()
    fakes.openai.set_default(Reply.error(429, "come back much later", retry_after="1e300"))
    fakes.anthropic.enqueue(Reply.text("from claude"))
    body = {"model": "gpt-4o-mini", "messages": [user("x")], "fallback_models": ["claude-sonnet-4-5"]}
    response = await gateway.chat(body)
    assert response.status_code == 200 and response.headers["x-omnigate-provider"] == "anthropic"
    assert fakes.openai.request_count == 1 and not sleep.waits


async def test_client_errors_are_never_retried(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.error(400, "bad parameter"), Reply.text("never"))
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert response.status_code == 400 and fakes.openai.request_count == 1


QUOTA = "You exceeded your current quota, please check your plan and billing details."


async def test_a_spent_provider_quota_is_not_retried_and_clients_are_told_not_to_retry(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="3")
    fakes.openai.enqueue(Reply.error(429, QUOTA, error_type="insufficient_quota", code="insufficient_quota"))
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert response.status_code == 429 and fakes.openai.request_count == 1
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "upstream_insufficient_quota")
    assert response.headers["x-should-retry"] == "false"
    # A rate limit's 429 is still retried.
    fakes.openai.enqueue(Reply.error(429, "slow down", code="rate_limit_exceeded"), Reply.text("second try"))
    assert (await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})).status_code == 200
    assert fakes.openai.request_count == 3


async def test_a_spent_provider_quota_fails_over_at_once(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="3")
    fakes.openai.set_default(
        Reply.error(429, QUOTA, error_type="insufficient_quota", code="insufficient_quota")
    )
    fakes.anthropic.enqueue(Reply.text("from the fallback"))
    body = {"model": "gpt-4o-mini", "fallback_models": ["claude-sonnet-4-5"], "messages": [user("x")]}
    response = await gateway.chat(body)
    assert response.status_code == 200 and "fallback" in response.text
    assert fakes.openai.request_count == 1 and fakes.anthropic.request_count == 1


async def test_attempts_are_bounded_per_target_and_per_request(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="3")
    fakes.openai.set_default(Reply.error(502, "down"))
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
    assert response.status_code == 502 and fakes.openai.request_count == 3
    capped = await make_gateway(RETRY_MAX_ATTEMPTS="5", MAX_ATTEMPTS_PER_REQUEST="2")
    fakes.openai.reset()
    fakes.openai.set_default(Reply.error(502, "down"))
    assert (await capped.chat({"model": "gpt-4o-mini", "messages": [user("x")]})).status_code == 502
    assert fakes.openai.request_count == 2
    (row,) = await capped.usage_rows()
    assert row["attempts"] == 2 and row["status"] == "error"


async def test_one_attempt_setting_disables_the_policy(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="1")
    assert "retry" not in dict(gateway.runtime.plugins.policies)


async def test_a_stream_failing_before_its_first_byte_is_retried(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.error(503, "busy"), Reply.text("fresh stream"))
    # Anthropic's overloaded error inside a 200 stream, before any content: still safe to retry.
    fakes.anthropic.enqueue(Reply.text("lost", error_after=1), Reply.text("second try"))
    for model in ("gpt-4o-mini", "claude-sonnet-4-5"):
        response = await gateway.chat({"model": model, "messages": [user("x")], "stream": True})
        assert response.status_code == 200 and '"error"' not in response.text
        assert "data: [DONE]" in response.text
    assert fakes.openai.request_count == 2 and fakes.anthropic.request_count == 2
    rows = await gateway.usage_rows()
    assert sorted((row["status"], row["attempts"]) for row in rows) == [("ok", 2), ("ok", 2)]


async def test_a_stream_cut_after_the_first_byte_ends_with_an_error_event_and_no_retry(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.text("one two three four", cut_after=2), Reply.text("must not be used"))
    response = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")], "stream": True})
    assert response.status_code == 200
    assert '"error"' in response.text and "data: [DONE]" not in response.text
    assert "must not be used" not in response.text and fakes.openai.request_count == 1
    (row,) = await gateway.usage_rows()
    assert row["status"] == "truncated" and row["attempts"] == 1
