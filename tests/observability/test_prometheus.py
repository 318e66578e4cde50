"""`/metrics`: parsed with prometheus_client's parser; the numbers move as requests flow, labels stay bounded."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from omnigate.metrics.labels import OTHER, UNMATCHED, CappedLabels, RouteLabels
from omnigate.testing import Reply, Usage
from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import Fakes, Gateway, Tenant, create_tenant, user
from tests.conftest import admin_headers

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]
FORBIDDEN_LABELS = {"key", "key_id", "request_id", "api_key", "project"}


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in samples.items() if n == name and wanted <= series)


@pytest.fixture
def make_gateway(chat_env: dict[str, str]) -> GatewayFactory:
    @contextlib.asynccontextmanager
    async def factory(**env: str) -> AsyncIterator[Gateway]:
        async with run_gateway({**chat_env, **env}) as client:
            yield Gateway(client, await create_tenant(client))

    return factory


async def test_counters_histograms_and_writer_gauges_move(gateway: Gateway, fakes: Fakes) -> None:
    before = await scrape(gateway.client)
    fakes.openai.enqueue(Reply.text("a", usage=Usage(input=100, output=10, cache_read=20)))
    fakes.openai.enqueue(Reply.text("b", usage=Usage(input=50, output=5)))
    fakes.anthropic.enqueue(Reply.text("c", usage=Usage(input=7, output=3)))
    assert (await gateway.chat({"model": "gpt-4o-mini", "messages": [user("a")]})).status_code == 200
    stream = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("b")], "stream": True})
    assert stream.status_code == 200
    assert (await gateway.chat({"model": "claude-sonnet-4-5", "messages": [user("c")]})).status_code == 200
    rows = await gateway.usage_rows()  # flushes the usage writer
    after = await scrape(gateway.client)

    route = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
    assert (
        value(after, "omnigate_http_requests_total", **route)
        - value(before, "omnigate_http_requests_total", **route)
        == 3
    )
    assert value(after, "omnigate_http_requests_total", route="/metrics", method="GET", status="200") >= 1
    openai = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value(after, "omnigate_chat_requests_total", **openai, outcome="ok") == 2
    assert value(after, "omnigate_tokens_total", **openai, kind="input") == 150
    assert value(after, "omnigate_tokens_total", **openai, kind="output") == 15
    assert value(after, "omnigate_tokens_total", **openai, kind="cache_read") == 20
    assert total(after, "omnigate_cost_usd_total") == pytest.approx(sum(r["cost_micros"] for r in rows) / 1e6)
    assert value(after, "omnigate_upstream_latency_seconds_count", provider="openai") == 2
    assert value(after, "omnigate_upstream_latency_seconds_count", provider="anthropic") == 1
    assert value(after, "omnigate_gateway_overhead_seconds_count") == 3
    assert value(after, "omnigate_usage_records_written_total") == 3
    assert value(after, "omnigate_usage_queue_depth") == 0
    assert value(after, "omnigate_usage_records_dropped_total") == 0
    assert value(after, "omnigate_workers") == 1
    labels = {name for (_, series) in after for name, _ in series}
    assert not labels & FORBIDDEN_LABELS
    assert gateway.tenant.key not in str(after) and gateway.tenant.project_id not in str(after)


async def test_errors_unknown_prices_and_unmatched_paths(gateway: Gateway, fakes: Fakes) -> None:
    fakes.openai.enqueue(Reply.error(400, "nope"))
    assert (await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]})).status_code == 400
    fakes.openai.enqueue(Reply.text("free?", usage=Usage(input=5, output=5)))
    assert (
        await gateway.chat({"model": "gpt-4.1-nano-unpriced", "messages": [user("x")]})
    ).status_code == 200
    assert (
        await gateway.chat({"model": "no-such-provider-model", "messages": [user("x")]})
    ).status_code == 400
    for path in ("/wp-admin/install.php", "/v1/admin/orgs/org_1/nothing-here", "/v2/chat"):
        await gateway.client.get(path)
    await gateway.client.get("/v1/admin/orgs/org_x", headers=admin_headers())
    await gateway.client.request("BREW", "/health/live")
    samples = await scrape(gateway.client)
    assert (
        value(
            samples, "omnigate_chat_requests_total", provider="openai", model="gpt-4o-mini", outcome="error"
        )
        == 1
    )
    assert (
        value(samples, "omnigate_unpriced_requests_total", provider="openai", model="gpt-4.1-nano-unpriced")
        == 1
    )
    assert value(samples, "omnigate_unknown_price_models") >= 1
    assert value(samples, "omnigate_chat_requests_total", provider="none", model="none", outcome="error") == 1
    assert total(samples, "omnigate_http_requests_total", route=UNMATCHED) == 3
    assert (
        value(
            samples,
            "omnigate_http_requests_total",
            route="/v1/admin/orgs/{org_id}",
            method="GET",
            status="404",
        )
        == 1
    )
    assert total(samples, "omnigate_http_requests_total", route="/health/live", method=OTHER) == 1
    routes = {
        dict(series).get("route") for (name, series) in samples if name == "omnigate_http_requests_total"
    }
    assert not any(r and ("wp-admin" in r or "org_x" in r) for r in routes)


async def test_metrics_token_guards_the_endpoint(make_gateway: GatewayFactory) -> None:
    token = "metrics-token-5d1c0f0e6b"
    async with make_gateway(METRICS_TOKEN=token) as gw:
        for headers in (
            {},
            {"authorization": "Bearer wrong"},
            {"authorization": token},
            {"x-api-key": token},
        ):
            response = await gw.client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_metrics_token"
            assert token not in response.text
        assert await scrape(gw.client, authorization=f"Bearer {token}")
        project_key = await gw.client.get("/metrics", headers=gw.tenant.headers)
        assert project_key.status_code == 401


async def test_project_label_only_when_enabled(make_gateway: GatewayFactory, fakes: Fakes) -> None:
    async with make_gateway(METRICS_PER_PROJECT="true") as gw:
        fakes.openai.enqueue(Reply.text("a", usage=Usage(input=3, output=4)))
        assert (await gw.chat({"model": "gpt-4o-mini", "messages": [user("a")]})).status_code == 200
        samples = await scrape(gw.client)
        project = gw.tenant.project_id
        assert (
            value(
                samples,
                "omnigate_chat_requests_total",
                provider="openai",
                model="gpt-4o-mini",
                outcome="ok",
                project=project,
            )
            == 1
        )
        assert (
            value(
                samples,
                "omnigate_tokens_total",
                provider="openai",
                model="gpt-4o-mini",
                kind="output",
                project=project,
            )
            == 4
        )


async def _project(client: httpx.AsyncClient, org_id: str, **limits: Any) -> Tenant:
    created = await client.post(
        "/v1/admin/projects", json={"org_id": org_id, "name": "limited", **limits}, headers=admin_headers()
    )
    assert created.status_code in (200, 201), created.text
    body = created.json()
    return Tenant(org_id, body["id"], body["api_key"])


async def test_refusals_and_cache_hits(make_gateway: GatewayFactory, fakes: Fakes) -> None:
    async with make_gateway(RESPONSE_CACHE_ENABLED="true") as gw:
        body = {"model": "gpt-4o-mini", "messages": [user("same")], "temperature": 0}
        fakes.openai.enqueue(Reply.text("cached", usage=Usage(input=3, output=4)))
        assert (await gw.chat(body)).status_code == 200
        second = await gw.chat(body)
        assert second.status_code == 200 and second.headers.get("x-omnigate-cache") == "hit"
        limited = await _project(gw.client, gw.tenant.org_id, rpm=1)
        fakes.openai.enqueue(Reply.text("one", usage=Usage(input=3, output=4)))
        first = {"model": "gpt-4o-mini", "messages": [user("r1")]}
        assert (
            await gw.client.post("/v1/chat/completions", json=first, headers=limited.headers)
        ).status_code == 200
        refused = await gw.client.post("/v1/chat/completions", json=first, headers=limited.headers)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
        broke = await _project(gw.client, gw.tenant.org_id, daily_budget_usd=0.000001)
        fakes.openai.enqueue(Reply.text("costly", usage=Usage(input=30_000, output=4_000)))
        await gw.client.post("/v1/chat/completions", json=first, headers=broke.headers)
        over = await gw.client.post("/v1/chat/completions", json=first, headers=broke.headers)
        assert over.status_code == 429 and over.json()["error"]["code"] == "budget_exceeded"
        samples = await scrape(gw.client)
        assert value(samples, "omnigate_response_cache_requests_total", result="hit") == 1
        assert value(samples, "omnigate_response_cache_requests_total", result="miss") >= 1
        assert value(samples, "omnigate_refusals_total", reason="rate_limit") == 1
        assert value(samples, "omnigate_refusals_total", reason="budget") >= 1


async def test_breaker_state_gauge(make_gateway: GatewayFactory, fakes: Fakes) -> None:
    async with make_gateway(CIRCUIT_BREAKER_FAILURE_THRESHOLD="1", RETRY_MAX_ATTEMPTS="1") as gw:
        samples = await scrape(gw.client)
        assert total(samples, "omnigate_circuit_breakers") == 0
        fakes.openai.enqueue(Reply.error(503, "overloaded"))
        assert (await gw.chat({"model": "gpt-4o-mini", "messages": [user("x")]})).status_code >= 500
        refused = await gw.chat({"model": "gpt-4o-mini", "messages": [user("x")]})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "circuit_open"
        samples = await scrape(gw.client)
        assert value(samples, "omnigate_circuit_breakers", provider="openai", state="open") == 1
        assert value(samples, "omnigate_circuit_breakers", provider="openai", state="closed") == 0
        assert value(samples, "omnigate_refusals_total", reason="circuit_open") == 1


def test_model_labels_are_capped_and_routes_templated() -> None:
    models = CappedLabels(limit=3)
    assert [models.label(m) for m in ("a", "b", "c", "d", "a", "x" * 500)] == [
        "a",
        "b",
        "c",
        OTHER,
        "a",
        OTHER,
    ]
    from starlette.routing import Route

    async def endpoint(request: Any) -> None:
        return None

    routes = RouteLabels(
        [
            Route("/v1/models", endpoint),
            Route("/v1/models/{model_id:path}", endpoint),
            Route("/x/{id}", endpoint),
        ]
    )
    assert routes.label("/v1/models") == "/v1/models"
    assert routes.label("/v1/models/gpt-4o/extra") == "/v1/models/{model_id:path}"
    assert routes.label("/x/1") == "/x/{id}" and routes.label("/x/1/2") == UNMATCHED
