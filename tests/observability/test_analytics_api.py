"""`/v1/metrics` and `/v1/admin/orgs/{id}/metrics`: shape, isolation, parameters and bounds."""

from __future__ import annotations

import datetime

import pytest

from omnigate.store.records import now_ms
from omnigate.store.usage import insert_usage
from omnigate.testing import Reply, Usage
from tests.chat.conftest import Fakes, Gateway, create_tenant, user
from tests.conftest import admin_headers
from tests.usage.conftest import make_record

HOUR = 3_600_000
METRIC_FIELDS = {
    "requests",
    "errors",
    "error_rate",
    "cache_hits",
    "cache_hit_rate",
    "fallbacks",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_requests",
    "latency_ms",
}


def iso(epoch_ms: int) -> str:
    return datetime.datetime.fromtimestamp(epoch_ms / 1000, tz=datetime.UTC).isoformat()


async def test_project_metrics_count_real_chat_traffic(gateway: Gateway, fakes: Fakes) -> None:
    fakes.openai.enqueue(Reply.text("one", usage=Usage(input=100, output=10)))
    fakes.openai.enqueue(Reply.error(400, "bad request"))
    fakes.anthropic.enqueue(Reply.text("two", usage=Usage(input=200, output=20)))
    assert (await gateway.chat({"model": "gpt-4o-mini", "messages": [user("a")]})).status_code == 200
    assert (await gateway.chat({"model": "gpt-4o-mini", "messages": [user("b")]})).status_code == 400
    assert (await gateway.chat({"model": "claude-sonnet-4-5", "messages": [user("c")]})).status_code == 200
    rows = await gateway.usage_rows()
    response = await gateway.client.get(
        "/v1/metrics", params={"group_by": "model", "from": "1h"}, headers=gateway.tenant.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == {"type": "project", "id": gateway.tenant.project_id}
    totals = body["totals"]
    assert set(totals) == METRIC_FIELDS
    assert totals["requests"] == 3 and totals["errors"] == 1
    assert totals["error_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert totals["input_tokens"] == 300 and totals["output_tokens"] == 30 and totals["total_tokens"] == 330
    assert totals["cost_usd"] == pytest.approx(sum(r["cost_micros"] or 0 for r in rows) / 1e6)
    assert totals["latency_ms"]["p50"] is not None
    groups = {g["key"]: g for g in body["groups"]}
    assert groups["gpt-4o-mini"]["requests"] == 2 and groups["claude-sonnet-4-5"]["requests"] == 1
    assert body["bucket"] == "1m" and len(body["timeseries"]) in (60, 61)
    assert sum(b["requests"] for b in body["timeseries"]) == 3


async def test_gaps_are_zero_filled_buckets_aligned_to_utc(gateway: Gateway) -> None:
    base = (now_ms() - 5 * HOUR) // HOUR * HOUR
    records = [
        make_record(
            org_id=gateway.tenant.org_id, project_id=gateway.tenant.project_id, created_at=base + 60_000
        ),
        make_record(
            org_id=gateway.tenant.org_id, project_id=gateway.tenant.project_id, created_at=base + 3 * HOUR + 5
        ),
    ]
    await insert_usage(gateway.runtime.db, records)
    response = await gateway.client.get(
        "/v1/metrics",
        params={"from": iso(base), "to": iso(base + 4 * HOUR), "bucket": "1h"},
        headers=gateway.tenant.headers,
    )
    series = response.json()["timeseries"]
    assert [b["requests"] for b in series] == [1, 0, 0, 1]
    assert series[1]["start"] == iso(base + HOUR).replace("+00:00", ".000Z")
    assert series[1]["cost_usd"] == 0 and series[1]["error_rate"] == 0.0
    assert series[1]["latency_ms"] == {"p50": None, "p95": None, "p99": None}


async def test_a_project_sees_only_its_own_usage(gateway: Gateway) -> None:
    other = await create_tenant(gateway.client, "other")
    stamp = now_ms() - 1000
    await insert_usage(
        gateway.runtime.db,
        [
            make_record(org_id=other.org_id, project_id=other.project_id, created_at=stamp),
            make_record(org_id=other.org_id, project_id=other.project_id, created_at=stamp),
            make_record(org_id=gateway.tenant.org_id, project_id=gateway.tenant.project_id, created_at=stamp),
        ],
    )
    mine = (await gateway.client.get("/v1/metrics", headers=gateway.tenant.headers)).json()
    theirs = (await gateway.client.get("/v1/metrics", headers=other.headers)).json()
    assert mine["totals"]["requests"] == 1 and theirs["totals"]["requests"] == 2
    sneaky = await gateway.client.get(
        "/v1/metrics", params={"project_id": other.project_id}, headers=gateway.tenant.headers
    )
    assert sneaky.status_code == 400 and sneaky.json()["error"]["param"] == "project_id"
    assert (await gateway.client.get("/v1/metrics")).status_code == 401


async def test_org_metrics_need_the_admin_key_and_group_by_project(gateway: Gateway) -> None:
    tenant = gateway.tenant
    second = (
        await gateway.client.post(
            "/v1/admin/projects", json={"org_id": tenant.org_id, "name": "second"}, headers=admin_headers()
        )
    ).json()
    stamp = now_ms() - 1000
    await insert_usage(
        gateway.runtime.db,
        [
            make_record(org_id=tenant.org_id, project_id=tenant.project_id, created_at=stamp),
            make_record(org_id=tenant.org_id, project_id=second["id"], created_at=stamp),
            make_record(org_id=tenant.org_id, project_id=second["id"], created_at=stamp),
            make_record(org_id="org_elsewhere", project_id="proj_elsewhere", created_at=stamp),
        ],
    )
    path = f"/v1/admin/orgs/{tenant.org_id}/metrics"
    assert (await gateway.client.get(path, headers=tenant.headers)).status_code == 403
    response = await gateway.client.get(path, params={"group_by": "project"}, headers=admin_headers())
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == {"type": "org", "id": tenant.org_id} and body["totals"]["requests"] == 3
    assert [(g["key"], g["requests"]) for g in body["groups"]] == [(second["id"], 2), (tenant.project_id, 1)]
    missing = await gateway.client.get("/v1/admin/orgs/org_nope/metrics", headers=admin_headers())
    assert missing.status_code == 404
    project_only = await gateway.client.get(
        "/v1/metrics", params={"group_by": "project"}, headers=tenant.headers
    )
    assert project_only.status_code == 400 and project_only.json()["error"]["param"] == "group_by"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-13-01"}, "to"),
        ({"from": "1h", "to": "2h"}, "from"),
        ({"bucket": "2m"}, "bucket"),
        ({"group_by": "colour"}, "group_by"),
        ({"from": "30d", "bucket": "1m"}, "bucket"),
        ({"frm": "1h"}, "frm"),
        ({"from": "x" * 5000}, "from"),
        ({"from": "' OR 1=1 --"}, "from"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    gateway: Gateway, params: dict[str, str], param: str
) -> None:
    response = await gateway.client.get("/v1/metrics", params=params, headers=gateway.tenant.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


async def test_repeated_parameter_is_refused(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/metrics?bucket=1h&bucket=1d", headers=gateway.tenant.headers)
    assert response.status_code == 400 and response.json()["error"]["param"] == "bucket"


async def test_bucket_cap_allows_exactly_ten_thousand(gateway: Gateway) -> None:
    end = now_ms() // 60_000 * 60_000
    ok = await gateway.client.get(
        "/v1/metrics",
        params={"from": iso(end - 10_000 * 60_000), "to": iso(end), "bucket": "1m"},
        headers=gateway.tenant.headers,
    )
    assert ok.status_code == 200 and len(ok.json()["timeseries"]) == 10_000
    over = await gateway.client.get(
        "/v1/metrics",
        params={"from": iso(end - 10_001 * 60_000), "to": iso(end), "bucket": "1m"},
        headers=gateway.tenant.headers,
    )
    assert over.status_code == 400 and over.json()["error"]["param"] == "bucket"


async def test_busy_analytics_answer_503_instead_of_queueing_forever(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnigate.analytics import routes

    monkeypatch.setattr(routes, "WAIT_S", 0.2)
    slots = routes._slots(gateway.runtime)
    for _ in range(routes.MAX_CONCURRENT):
        await slots.acquire()
    try:
        busy = await gateway.client.get("/v1/metrics", headers=gateway.tenant.headers)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "analytics_busy"
        assert busy.headers["retry-after"] == "5"
    finally:
        for _ in range(routes.MAX_CONCURRENT):
            slots.release()
    assert (await gateway.client.get("/v1/metrics", headers=gateway.tenant.headers)).status_code == 200
