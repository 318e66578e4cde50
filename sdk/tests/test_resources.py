"""Each resource sends the right method, path, auth, query and body, and parses the answer into its model."""

from __future__ import annotations

import datetime

import httpx
import pytest

import omnigate_sdk as og
from tests.conftest import ADMIN_KEY, API_KEY, Driver, Script, ok

ORG = {
    "id": "org_1",
    "object": "organization",
    "name": "acme",
    "daily_budget_usd": 5.0,
    "monthly_budget_usd": None,
    "created_at": "2026-01-02T03:04:05.000Z",
    "updated_at": "2026-01-02T03:04:05.000Z",
}
PROJECT = {"id": "prj_1", "object": "project", "org_id": "org_1", "name": "web", "rpm": 60, "tpm": None}


def is_project_call(request: httpx.Request) -> bool:
    return (
        request.headers.get("authorization") == f"Bearer {API_KEY}" and "x-admin-key" not in request.headers
    )


def is_admin_call(request: httpx.Request) -> bool:
    return request.headers.get("x-admin-key") == ADMIN_KEY and "authorization" not in request.headers


async def test_chat_create_sends_the_native_body_and_parses_the_response(gw: Driver, script: Script) -> None:
    answer = {
        "id": "c1",
        "request_id": "req-1",
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "message": {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        "finish_reason": "tool_calls",
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110, "cached_tokens": 40},
        "cost_usd": 0.000357,
        "latency_ms": 12,
        "cached": False,
        "fallback_used": True,
        "routing_note": "added by a newer gateway",
    }
    script.queue(ok(answer, headers={"x-ratelimit-remaining-requests": "59"}))
    result = await gw(
        lambda c: c.chat.create(
            model="claude-sonnet-4-5",
            messages=[og.ChatMessage(role="user", content="hi"), {"role": "user", "content": "there"}],
            max_tokens=50,
            stop=("END",),
            fallback_models=["gpt-4o-mini"],
            cache=False,
            metadata={"team": "web"},
            extra_body={"seed": 7},
            extra_headers={"x-request-id": "mine-1"},
        )
    )
    assert isinstance(result, og.ChatResponse)
    assert result.provider == "anthropic" and result.fallback_used and result.usage.cached_tokens == 40
    assert result.message.tool_calls is not None and result.message.tool_calls[0].function.name == "f"
    assert result.routing_note == "added by a newer gateway"  # type: ignore[attr-defined]
    assert result.response_headers["x-ratelimit-remaining-requests"] == "59"
    request = script.last
    assert request.method == "POST" and request.url.path == "/v1/chat" and is_project_call(request)
    assert request.headers["x-request-id"] == "mine-1"
    assert request.headers["user-agent"].startswith("omnigate-sdk/")
    assert script.body() == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "there"}],
        "max_tokens": 50,
        "stop": ["END"],
        "fallback_models": ["gpt-4o-mini"],
        "cache": False,
        "metadata": {"team": "web"},
        "seed": 7,
    }


async def test_an_unknown_keyword_is_refused(gw: Driver, script: Script) -> None:
    with pytest.raises(TypeError, match="temprature"):
        await gw(lambda c: c.chat.create(model="m", messages=[], temprature=1))
    assert script.requests == []


async def test_models_list_and_retrieve_with_pricing(gw: Driver, script: Script) -> None:
    card = {
        "id": "azure/chat-deployment",
        "object": "model",
        "created": 0,
        "owned_by": "azure",
        "pricing": {"currency": "USD", "unit": "1M tokens", "input": 2.5, "output": 10.0, "cache_read": 1.25},
    }
    script.queue(ok({"object": "list", "data": [card]}), ok(card))
    models = await gw(lambda c: c.models.list())
    model = await gw(lambda c: c.models.retrieve("azure/chat-deployment"))
    assert models == [model] and model.pricing is not None and model.pricing.output == 10.0
    assert script.requests[0].url.path == "/v1/models"
    assert script.requests[1].url.raw_path == b"/v1/models/azure%2Fchat-deployment"
    assert all(is_project_call(r) for r in script.requests)


async def test_keys_create_list_revoke(gw: Driver, script: Script) -> None:
    created = {
        "id": "key_1",
        "name": "ci",
        "prefix": "og-abcd",
        "key": "og-abcd-secret",
        "created_at": 1767225600000,
    }
    listed = {"id": "key_1", "name": "ci", "prefix": "og-abcd", "revoked_at": "2026-01-01T00:00:00Z"}
    script.queue(ok(created, status=201), ok({"object": "list", "data": [listed]}), ok(listed))
    key = await gw(lambda c: c.keys.create("ci", allowed_models=("gpt-4o-mini",)))
    keys = await gw(lambda c: c.keys.list())
    assert await gw(lambda c: c.keys.revoke("key_1")) == keys[0]
    assert key.key == "og-abcd-secret" and key.created_at == datetime.datetime(
        2026, 1, 1, tzinfo=datetime.timezone.utc
    )
    assert keys[0].revoked and not key.revoked
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("POST", "/v1/keys/api"),
        ("GET", "/v1/keys/api"),
        ("DELETE", "/v1/keys/api/key_1"),
    ]
    assert script.body(0) == {"name": "ci", "allowed_models": ["gpt-4o-mini"]}
    assert all(is_project_call(r) for r in script.requests)


def test_a_created_key_may_name_its_secret_api_key() -> None:
    assert og.CreatedAPIKey.model_validate({"id": "k", "api_key": "og-x"}).key == "og-x"


async def test_credentials_put_get_delete(gw: Driver, script: Script) -> None:
    shown = {"provider": "azure", "last4": "wxyz", "meta": {"endpoint": "https://x.openai.azure.com"}}
    deleted = {"object": "credential", "provider": "azure", "deleted": True}
    script.queue(ok(shown), ok(shown), ok({"object": "list", "data": [shown]}), ok(deleted))
    meta = {"endpoint": "https://x.openai.azure.com", "deployment": "d", "api_version": "2024-10-21"}
    put = await gw(lambda c: c.credentials.put("azure", api_key="secret-wxyz", meta=meta))
    got = await gw(lambda c: c.credentials.get("azure"))
    assert await gw(lambda c: c.credentials.list()) == [got]
    assert await gw(lambda c: c.credentials.delete("azure")) is None
    assert put == got and got.last4 == "wxyz" and got.meta == {"endpoint": "https://x.openai.azure.com"}
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("PUT", "/v1/credentials/azure"),
        ("GET", "/v1/credentials/azure"),
        ("GET", "/v1/credentials"),
        ("DELETE", "/v1/credentials/azure"),
    ]
    assert script.body(0) == {"api_key": "secret-wxyz", "meta": meta}


async def test_metrics_query_and_report(gw: Driver, script: Script) -> None:
    report = {
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
        "scope": {"type": "project", "id": "prj_1"},
        "totals": {
            "requests": 10,
            "errors": 1,
            "error_rate": 0.1,
            "cost_usd": 0.5,
            "latency_ms": {"p50": 80.0, "p95": 120.0, "p99": None},
            "tokens_per_second": 42.0,
        },
        "groups": [{"key": "gpt-4o-mini", "requests": 10}],
        "timeseries": [{"start": "2026-01-01T00:00:00Z", "requests": 0}],
    }
    script.queue(ok(report), ok(report))
    start = datetime.datetime(2026, 1, 1)
    got = await gw(lambda c: c.metrics.get(from_=start, to="now", group_by="model", bucket="1h"))
    await gw(lambda c: c.metrics.get())
    assert got.totals.requests == 10 and got.totals.error_rate == 0.1 and got.groups[0].key == "gpt-4o-mini"
    assert got.totals.latency_ms.p95 == 120.0 and got.totals.latency_ms.p99 is None
    assert got.totals.tokens_per_second == 42.0  # a field this SDK does not know
    assert got.scope == og.MetricsScope(type="project", id="prj_1")
    assert got.timeseries[0].requests == 0 and got.from_ == datetime.datetime(
        2026, 1, 1, tzinfo=datetime.timezone.utc
    )
    first, second = script.requests
    assert first.url.path == "/v1/metrics" and is_project_call(first)
    assert dict(first.url.params) == {
        "from": "2026-01-01T00:00:00Z",
        "to": "now",
        "group_by": "model",
        "bucket": "1h",
    }
    assert dict(second.url.params) == {}


async def test_admin_orgs(gw: Driver, script: Script) -> None:
    script.queue(
        ok(ORG, status=201), ok({"object": "list", "data": [ORG]}), ok(ORG), ok(ORG), ok({"totals": {}})
    )
    org = await gw(lambda c: c.admin.orgs.create("acme", daily_budget_usd=5))
    assert await gw(lambda c: c.admin.orgs.list()) == [org]
    assert await gw(lambda c: c.admin.orgs.get("org_1")) == org
    await gw(lambda c: c.admin.orgs.update("org_1", monthly_budget_usd=None))
    await gw(lambda c: c.admin.orgs.metrics("org_1", group_by="project", from_="7d"))
    assert org.created_at == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("POST", "/v1/admin/orgs"),
        ("GET", "/v1/admin/orgs"),
        ("GET", "/v1/admin/orgs/org_1"),
        ("PATCH", "/v1/admin/orgs/org_1"),
        ("GET", "/v1/admin/orgs/org_1/metrics"),
    ]
    assert script.body(0) == {"name": "acme", "daily_budget_usd": 5}
    assert script.body(3) == {"monthly_budget_usd": None}  # only what was given; None clears
    assert dict(script.requests[4].url.params) == {"from": "7d", "group_by": "project"}
    assert all(is_admin_call(r) for r in script.requests)


async def test_admin_projects(gw: Driver, script: Script) -> None:
    created = {**PROJECT, "api_key": "og-first-key", "api_key_id": "key_9"}
    script.queue(ok(created, status=201), ok({"object": "list", "data": [PROJECT]}), ok(PROJECT), ok(PROJECT))
    project = await gw(lambda c: c.admin.projects.create("org_1", "web", rpm=60))
    listed = await gw(lambda c: c.admin.projects.list(org_id="org_1"))
    await gw(lambda c: c.admin.projects.get("prj_1"))
    await gw(lambda c: c.admin.projects.update("prj_1", name="web2", tpm=None))
    assert isinstance(project, og.CreatedProject) and project.api_key == "og-first-key"
    assert listed[0].rpm == 60 and listed[0].tpm is None
    assert script.body(0) == {"org_id": "org_1", "name": "web", "rpm": 60}
    assert dict(script.requests[1].url.params) == {"org_id": "org_1"}
    assert script.requests[2].url.path == "/v1/admin/projects/prj_1"
    assert script.body(3) == {"name": "web2", "tpm": None}
    assert all(is_admin_call(r) for r in script.requests)


async def test_ids_cannot_escape_their_path_segment(gw: Driver, script: Script) -> None:
    script.queue(ok(ORG))
    await gw(lambda c: c.admin.orgs.get("../projects?x=1"))
    assert script.last.url.raw_path == b"/v1/admin/orgs/..%2Fprojects%3Fx%3D1"
    with pytest.raises(ValueError, match="not a valid id"):
        await gw(lambda c: c.admin.orgs.get(".."))


async def test_a_base_url_with_a_path_prefix_is_kept(script: Script) -> None:
    transport = httpx.MockTransport(script.handle)
    with og.Client(
        api_key=API_KEY, base_url="https://gw.example.com/omnigate/", transport=transport
    ) as client:
        script.queue(ok({"object": "list", "data": []}))
        assert client.models.list() == []
    assert str(script.last.url) == "https://gw.example.com/omnigate/v1/models"


def test_a_caller_supplied_http_client_is_used_and_left_open(script: Script) -> None:
    http = httpx.Client(transport=httpx.MockTransport(script.handle), headers={"x-proxy-tag": "t"})
    with og.Client(api_key=API_KEY, base_url="http://gateway.test", http_client=http) as client:
        script.queue(ok({"object": "list", "data": []}))
        client.models.list()
    assert script.last.headers["x-proxy-tag"] == "t" and not http.is_closed
    http.close()


def test_timeouts_per_client_and_per_call(script: Script) -> None:
    transport = httpx.MockTransport(script.handle)
    with og.Client(
        api_key=API_KEY, base_url="http://gateway.test", timeout=12.0, transport=transport
    ) as client:
        script.queue(ok({"object": "list", "data": []}), ok({"object": "list", "data": []}))
        client.models.list()
        client.models.list(timeout=httpx.Timeout(3.0, connect=1.0))
    first, second = (r.extensions["timeout"] for r in script.requests)
    assert first == {"connect": 12.0, "read": 12.0, "write": 12.0, "pool": 12.0}
    assert second == {"connect": 1.0, "read": 3.0, "write": 3.0, "pool": 3.0}
