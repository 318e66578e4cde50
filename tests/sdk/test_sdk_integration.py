"""The SDK (``omnigate_sdk``, installed from ``sdk/``) against a real gateway on a socket, fakes as upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import omnigate_sdk as og
import pytest

from omnigate.testing import Reply, Usage
from omnigate.testing.pytest_plugin import serve_gateway
from tests.chat.conftest import TEST_PRICES, Fakes
from tests.conftest import ADMIN_KEY

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def base_url(chat_env: dict[str, str]) -> AsyncIterator[str]:
    async with serve_gateway(chat_env) as url:
        yield url


async def make_project(base_url: str) -> og.CreatedProject:
    async with og.AsyncClient(admin_key=ADMIN_KEY, base_url=base_url, max_retries=0) as admin:
        org = await admin.admin.orgs.create("acme", daily_budget_usd=25)
        return await admin.admin.projects.create(org.id, "web", rpm=1000)


async def test_admin_orgs_and_projects(base_url: str) -> None:
    async with og.AsyncClient(admin_key=ADMIN_KEY, base_url=base_url) as client:
        org = await client.admin.orgs.create("acme", daily_budget_usd=25, monthly_budget_usd=300.5)
        assert org.name == "acme" and org.daily_budget_usd == 25 and org.created_at is not None
        assert await client.admin.orgs.get(org.id) == org
        assert [o.id for o in await client.admin.orgs.list()] == [org.id]
        updated = await client.admin.orgs.update(org.id, name="acme2", daily_budget_usd=None)
        assert (updated.name, updated.daily_budget_usd, updated.monthly_budget_usd) == ("acme2", None, 300.5)

        project = await client.admin.projects.create(org.id, "web", rpm=60)
        assert project.api_key.startswith("og-") and project.org_id == org.id and project.rpm == 60
        assert [p.id for p in await client.admin.projects.list(org_id=org.id)] == [project.id]
        assert await client.admin.projects.list(org_id="org_missing") == []
        changed = await client.admin.projects.update(project.id, rpm=None, tpm=5000)
        assert (changed.rpm, changed.tpm) == (None, 5000)
        assert (await client.admin.projects.get(project.id)).tpm == 5000

        with pytest.raises(og.NotFoundError) as missing:
            await client.admin.orgs.get("org_missing")
        assert missing.value.request_id and missing.value.code == "not_found"
        with pytest.raises(og.BadRequestError) as bad:
            await client.admin.orgs.update(org.id, daily_budget_usd=-1)
        assert bad.value.param == "daily_budget_usd"

    async with og.AsyncClient(admin_key="wrong-admin-key", base_url=base_url) as intruder:
        with pytest.raises((og.AuthenticationError, og.PermissionDeniedError)):
            await intruder.admin.orgs.list()
    async with og.AsyncClient(admin_key=project.api_key, base_url=base_url) as project_as_admin:
        with pytest.raises((og.AuthenticationError, og.PermissionDeniedError)):
            await project_as_admin.admin.orgs.list()


async def test_async_chat_json_and_stream(base_url: str, fakes: Fakes) -> None:
    project = await make_project(base_url)
    async with og.AsyncClient(api_key=project.api_key, base_url=base_url) as client:
        fakes.anthropic.enqueue(Reply.text("Bonjour", usage=Usage(input=100, output=10, cache_read=40)))
        answer = await client.chat.create(model="claude-sonnet-4-5", messages=HI, max_tokens=20)
        assert answer.text == "Bonjour" and answer.provider == "anthropic" and answer.finish_reason == "stop"
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.cached_tokens) == (
            100,
            10,
            40,
        )
        assert answer.cost_usd == pytest.approx((60 * 3 + 40 * 0.3 + 10 * 15) / 1_000_000)
        assert answer.request_id == answer.response_headers["x-request-id"]
        assert fakes.anthropic.requests[-1].json["max_tokens"] == 20

        fakes.openai.enqueue(Reply.text(["one ", "two ", "three"], usage=Usage(input=5, output=3)))
        stream = await client.chat.stream(model="gpt-4o-mini", messages=HI)
        async with stream:
            chunks = [chunk async for chunk in stream]
        assert stream.text == "one two three" and all(isinstance(c, og.StreamChunk) for c in chunks)
        assert [c for c in chunks if c.usage is not None] == [chunks[-1]]
        assert stream.usage is not None and (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (
            5,
            3,
        )
        assert chunks[-1].finish_reason == "stop" and chunks[-1].cost_usd is not None
        assert {c.request_id for c in chunks} == {stream.request_id}

        with pytest.raises(og.BadRequestError) as unknown:
            await client.chat.create(model="no-such-model-xyz", messages=HI)
        assert unknown.value.code == "model_not_found" and unknown.value.request_id


async def test_a_stream_broken_upstream_raises_a_typed_error_after_the_partial_text(
    base_url: str, fakes: Fakes
) -> None:
    project = await make_project(base_url)
    fakes.anthropic.enqueue(Reply.text(["one ", "two ", "three ", "four"], cut_after=4, chunk_delay_s=0.02))
    async with og.AsyncClient(api_key=project.api_key, base_url=base_url) as client:
        stream = await client.chat.stream(model="claude-sonnet-4-5", messages=HI)
        with pytest.raises(og.InternalServerError) as caught:
            async with stream:
                async for _ in stream:
                    pass
    assert caught.value.error_type == "upstream_error" and caught.value.request_id == stream.request_id
    assert stream.text.startswith("one") and stream.usage is None


async def test_models_with_pricing_and_auth_errors(base_url: str) -> None:
    project = await make_project(base_url)
    async with og.AsyncClient(api_key=project.api_key, base_url=base_url) as client:
        catalog = {model.id: model for model in await client.models.list()}
        assert catalog["gpt-4o-mini"].owned_by == "openai"
        card = await client.models.retrieve("azure/chat-deployment")
        price = TEST_PRICES["azure/chat-deployment"]
        assert card.pricing is not None and (card.pricing.input, card.pricing.output) == (
            price["input"],
            price["output"],
        )
        with pytest.raises(og.NotFoundError):
            await client.models.retrieve("no-such-model-xyz")
    async with og.AsyncClient(api_key="og-not-a-real-key", base_url=base_url) as stranger:
        with pytest.raises(og.AuthenticationError) as caught:
            await stranger.models.list()
    assert caught.value.code == "invalid_api_key" and caught.value.request_id


async def test_the_sync_client(base_url: str, fakes: Fakes) -> None:
    project = await make_project(base_url)
    fakes.gemini.enqueue(Reply.text("sync hello", usage=Usage(input=4, output=2)))
    fakes.openai.enqueue(Reply.text(["x", "y"], usage=Usage(input=2, output=2)))

    def use_sync_client() -> dict[str, Any]:
        with og.Client(api_key=project.api_key, base_url=base_url) as client:
            answer = client.chat.create(model="gemini-2.5-flash", messages=HI)
            with client.chat.stream(model="gpt-4o-mini", messages=HI) as stream:
                final = stream.until_done()
            return {"answer": answer, "text": stream.text, "final": final, "models": client.models.list()}

    # The gateway runs in this event loop: the blocking client runs in a thread beside it.
    result = await asyncio.to_thread(use_sync_client)
    assert result["answer"].text == "sync hello" and result["answer"].provider == "gemini"
    assert result["text"] == "xy" and result["final"].usage.total_tokens == 4
    assert any(model.id == "gemini-2.5-flash" for model in result["models"])


async def test_named_keys_create_restrict_list_revoke(base_url: str, fakes: Fakes) -> None:
    project = await make_project(base_url)
    async with og.AsyncClient(api_key=project.api_key, base_url=base_url) as owner:
        created = await owner.keys.create("ci", allowed_models=["gpt-4o-mini"])
        assert created.key.startswith("og-") and created.allowed_models == ["gpt-4o-mini"]
        listed = {key.id: key for key in await owner.keys.list()}
        assert set(listed) == {project.api_key_id, created.id}
        assert listed[created.id].name == "ci" and listed[created.id].model_extra is not None
        assert "key" not in listed[created.id].model_extra  # the secret is never listed

        async with og.AsyncClient(api_key=created.key, base_url=base_url) as restricted:
            fakes.openai.enqueue(Reply.text("allowed"))
            assert (await restricted.chat.create(model="gpt-4o-mini", messages=HI)).text == "allowed"
            with pytest.raises(og.PermissionDeniedError) as denied:
                await restricted.chat.create(model="claude-sonnet-4-5", messages=HI)
            assert denied.value.code == "model_not_allowed"

            revoked = await owner.keys.revoke(created.id)
            assert revoked.id == created.id and revoked.revoked
            with pytest.raises(og.AuthenticationError):
                await restricted.models.list()
        with pytest.raises(og.NotFoundError):
            await owner.keys.revoke("key_does_not_exist")


async def test_byok_credentials_put_get_list_delete(base_url: str, fakes: Fakes) -> None:
    project = await make_project(base_url)
    async with og.AsyncClient(api_key=project.api_key, base_url=base_url) as client:
        stored = await client.credentials.put("openai", api_key="sk-project-own-key-9876")
        assert (stored.provider, stored.last4, stored.meta) == ("openai", "9876", None)
        assert await client.credentials.get("openai") == stored
        assert await client.credentials.list() == [stored]

        fakes.openai.enqueue(Reply.text("paid by the project"))
        await client.chat.create(model="gpt-4o-mini", messages=HI)
        assert fakes.openai.requests[-1].headers["authorization"] == "Bearer sk-project-own-key-9876"

        with pytest.raises(og.BadRequestError) as bad:
            await client.credentials.put("azure", api_key="azure-key-without-its-endpoint")
        assert bad.value.param == "meta"
        await client.credentials.delete("openai")
        with pytest.raises(og.NotFoundError):
            await client.credentials.get("openai")


async def test_project_and_org_metrics(base_url: str, fakes: Fakes) -> None:
    project = await make_project(base_url)
    async with og.AsyncClient(api_key=project.api_key, admin_key=ADMIN_KEY, base_url=base_url) as client:
        fakes.openai.enqueue(
            Reply.text("a", usage=Usage(input=10, output=4)), Reply.text("b", usage=Usage(input=6, output=2))
        )
        for _ in range(2):
            await client.chat.create(model="gpt-4o-mini", messages=HI)

        async def settled() -> og.MetricsReport:
            for _ in range(50):  # usage records are written behind the requests
                report = await client.metrics.get(from_="1h", group_by="model", bucket="1m")
                if report.totals.requests == 2:
                    return report
                await asyncio.sleep(0.1)
            raise AssertionError(f"usage never reached the metrics: {report.totals}")

        report = await settled()
        assert report.scope == og.MetricsScope(type="project", id=project.id)
        assert (report.totals.input_tokens, report.totals.output_tokens, report.totals.errors) == (16, 6, 0)
        assert report.totals.cost_usd > 0 and report.totals.latency_ms.p50 is not None
        assert [(g.key, g.requests) for g in report.groups] == [("gpt-4o-mini", 2)]
        assert report.bucket == "1m" and sum(b.requests for b in report.timeseries) == 2

        org_report = await client.admin.orgs.metrics(project.org_id, group_by="project")
        assert [(g.key, g.requests) for g in org_report.groups] == [(project.id, 2)]
        with pytest.raises(og.BadRequestError) as bad:
            await client.metrics.get(group_by="project")  # org-only grouping
        assert bad.value.param == "group_by"
