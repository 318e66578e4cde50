"""Budgets: atomic worst-case reservation, settlement, release, exact headers, rebuild and UTC windows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import attrs
import httpx
import pytest

from omnigate.chat.models import Usage as ChatUsage
from omnigate.chat.validate import parse_chat_request
from omnigate.cli.servers import SERVERS
from omnigate.plugin.interfaces import CallOutcome
from omnigate.policies.budget import BudgetLine, BudgetPart, BudgetPolicy, Seeder, usd_header, usd_text
from omnigate.policies.estimate import IMAGE_TOKENS, prompt_tokens, worst_case_usage
from omnigate.policies.windows import day_window, minute_window, month_window
from omnigate.settings import Settings
from omnigate.state import MemoryState
from omnigate.store.records import Principal
from omnigate.testing import Reply, Usage
from tests.chat.conftest import Fakes, create_tenant
from tests.conftest import admin_headers
from tests.policies import admission_fixtures
from tests.policies.admission_fixtures import (
    AdmissionGateways,
    FakeClock,
    body,
    cost_of,
    exact_reply,
    set_budgets,
    usd,
    utc,
    worst_case,
)

# The fixtures these tests use (pytest finds fixtures among a module's attributes).
chat_env, fakes, admission_env, gateways = (
    admission_fixtures.chat_env,
    admission_fixtures.fakes,
    admission_fixtures.admission_env,
    admission_fixtures.gateways,
)

BUDGET_HEADERS = [
    f"x-budget-{s}-{p}-{k}-usd"
    for s in ("org", "project")
    for p in ("daily", "monthly")
    for k in ("limit", "remaining")
]


def budget_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in BUDGET_HEADERS if name in response.headers}


def assert_budget_refusal(response: httpx.Response, budget_name: str) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    assert error["message"].startswith(budget_name), error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert int(response.headers["retry-after"]) >= 1


# -- windows and the estimator -----------------------------------------------------------------------


def test_day_windows_change_exactly_at_utc_midnight() -> None:
    before, after = day_window(utc("2024-02-28T23:59:59.999")), day_window(utc("2024-02-29T00:00:00"))
    assert before.label == "d20240228" and after.label == "d20240229"
    assert before.end == after.start == utc("2024-02-29T00:00:00")
    assert after.end - after.start == 86_400


def test_month_windows_are_calendar_months_including_leap_february() -> None:
    february = month_window(utc("2024-02-29T23:59:59.999"))
    march = month_window(utc("2024-03-01T00:00:00"))
    assert (february.label, march.label) == ("mo202402", "mo202403")
    assert february.start == utc("2024-02-01T00:00:00") and february.end == march.start == utc(
        "2024-03-01T00:00:00"
    )
    december = month_window(utc("2023-12-31T12:00:00"))
    assert december.end == utc("2024-01-01T00:00:00")
    assert month_window(utc("2023-02-15T00:00:00")).end - utc("2023-02-01T00:00:00") == 28 * 86_400


def test_minute_windows_and_ttls() -> None:
    window = minute_window(utc("2099-01-01T10:00:59.5"))
    assert window.start == utc("2099-01-01T10:00:00") and window.end == utc("2099-01-01T10:01:00")
    assert window.ttl_s(utc("2099-01-01T10:00:59.5"), 5) == pytest.approx(5.5)


def test_prompt_estimate_counts_bytes_messages_images_and_tools() -> None:
    request = parse_chat_request(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "abc"},  # 3 bytes
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "日本"},  # 6 bytes
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                },
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],  # 1 + 2 bytes
            "max_tokens": 7,
        }
    )
    assert prompt_tokens(request) == (3 + 6 + 3) // 3 + 3 + 2 * 4 + IMAGE_TOKENS
    usage = worst_case_usage(request, default_cap=4096)
    assert (usage.input_tokens, usage.output_tokens) == (prompt_tokens(request), 7)
    uncapped = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert worst_case_usage(uncapped, default_cap=4096).output_tokens == 4096


def test_prompt_estimate_is_not_below_the_fakes_word_count_for_text() -> None:
    text = " ".join(["tokenization"] * 50)
    request = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": text}]})
    # Real tokenizers give ~2 tokens for "tokenization"; the estimate must not be below that.
    assert prompt_tokens(request) >= 2 * 50


def test_budget_lines_are_values_whatever_they_keep_for_the_window() -> None:
    window = day_window(time.time())
    line = BudgetLine("project", "proj_1", "daily", 5_000_000, window)
    assert line == BudgetLine("project", "proj_1", "daily", 5_000_000, window)
    assert hash(line) == hash(BudgetLine("project", "proj_1", "daily", 5_000_000, window))
    assert line.limit_header == (b"x-budget-project-daily-limit-usd", b"5.000000")
    assert line.marker == line.key + ":seeded"


def test_budget_lines_follow_the_principal_object_and_the_day() -> None:
    policy = BudgetPolicy(MemoryState(), None, None, None, Settings())  # type: ignore[arg-type]
    principal = Principal("key_1", "proj_1", "org_1", None, None, None, project_daily_budget_micros=5)
    evening, midnight = utc("2099-03-31T23:59:59.9"), utc("2099-04-01T00:00:00")
    lines = policy.lines(principal, evening)
    assert [(line.scope, line.period, line.limit) for line in lines] == [("project", "daily", 5)]
    assert policy.lines(principal, evening + 0.05) is lines  # made once per principal and day
    assert policy.lines(principal, midnight)[0].window == day_window(midnight)  # a new day, new windows
    raised = attrs.evolve(principal, project_daily_budget_micros=7, org_monthly_budget_micros=9)
    assert [(line.scope, line.limit) for line in policy.lines(raised, midnight)] == [
        ("org", 9),
        ("project", 7),
    ]
    assert policy.lines(attrs.evolve(principal, project_daily_budget_micros=None), midnight) == ()


def test_a_settlement_after_its_day_ended_adjusts_only_the_month() -> None:
    admitted = utc("2099-03-30T23:59:59.5")
    lines = tuple(
        BudgetLine("project", "proj_1", period, 10_000_000, window(admitted))
        for period, window in (("daily", day_window), ("monthly", month_window))
    )
    part = BudgetPart(lines, 700, Seeder(None, None, time.time), admitted)  # type: ignore[arg-type]
    outcome = CallOutcome("ok", 200, ChatUsage(), cost_micros=200)
    assert [(c.key, c.amount, c.ttl_s) for c in part.settlement(outcome, admitted)] == [
        (lines[0].key, -500, pytest.approx(60.5)),
        (lines[1].key, -500, pytest.approx(lines[1].window.end + 60 - admitted)),
    ]
    after_midnight = utc("2099-03-31T00:00:00.5")
    assert [c.key for c in part.settlement(outcome, after_midnight)] == [lines[1].key]


def test_money_formats() -> None:
    assert usd_header(5_000_000) == "5.000000" and usd_header(4_999_370) == "4.999370"
    assert usd_text(5_000_000) == "$5.00" and usd_text(12_340) == "$0.01234" and usd_text(0) == "$0.00"


# -- admission ----------------------------------------------------------------------------------------


async def test_200_concurrent_requests_against_a_budget_fitting_10(
    gateways: AdmissionGateways, fakes: Fakes, backend: dict[str, str]
) -> None:
    gateway = await gateways.start()
    payload = body()
    reservation = worst_case(payload)
    budget = 10 * reservation + reservation // 2  # ten fit, the eleventh does not
    await set_budgets(gateway.client, gateway.tenant, project_daily_budget_usd=usd(budget))
    fakes.openai.set_default(exact_reply(payload))  # real cost == reservation: nothing is ever returned
    # The project's first requests ever (no counter yet), split across two instances sharing Redis.
    other = await gateways.start(tenant=gateway.tenant) if "REDIS_URL" in backend else gateway

    responses = await asyncio.gather(
        *(instance.chat(payload) for _ in range(100) for instance in (gateway, other))
    )

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 190
    assert fakes.openai.request_count == 10
    for response in responses:
        if response.status_code == 429:
            assert_budget_refusal(response, f"project daily budget of {usd_text(budget)} exceeded")
    await other.runtime.usage_writer.flush()
    rows = await gateway.usage_rows()
    spend = sum(row["cost_micros"] or 0 for row in rows)
    assert spend == 10 * reservation <= budget
    assert sum(1 for row in rows if row["status"] == "ok") == 10


async def test_headers_are_exact_and_settlement_returns_the_unused_reservation(
    gateways: AdmissionGateways, fakes: Fakes
) -> None:
    gateway = await gateways.start()
    payload = body()
    reservation = worst_case(payload)
    budget = reservation + reservation // 2  # one reservation fits at a time
    await set_budgets(
        gateway.client,
        gateway.tenant,
        org_daily_budget_usd=10,
        org_monthly_budget_usd=100,
        project_daily_budget_usd=usd(budget),
    )
    fakes.openai.enqueue(
        Reply.text("one", usage=Usage(input=20, output=30)), Reply.text("two", usage=Usage(input=5, output=7))
    )
    first = await gateway.chat(payload)
    assert first.status_code == 200, first.text
    assert budget_headers(first) == {
        "x-budget-org-daily-limit-usd": "10.000000",
        "x-budget-org-daily-remaining-usd": usd_header(10_000_000 - reservation),
        "x-budget-org-monthly-limit-usd": "100.000000",
        "x-budget-org-monthly-remaining-usd": usd_header(100_000_000 - reservation),
        "x-budget-project-daily-limit-usd": usd_header(budget),
        "x-budget-project-daily-remaining-usd": usd_header(budget - reservation),
    }
    spent = cost_of(20, 30)
    # The first request settled to its real cost, so a second reservation fits again.
    second = await gateway.chat({**payload, "stream": True})
    assert second.status_code == 200, second.text
    assert second.headers["x-budget-project-daily-remaining-usd"] == usd_header(budget - spent - reservation)
    assert second.headers["x-budget-org-monthly-remaining-usd"] == usd_header(
        100_000_000 - spent - reservation
    )
    third = await gateway.chat(payload)
    spent += cost_of(5, 7)
    assert third.headers["x-budget-project-daily-remaining-usd"] == usd_header(budget - spent - reservation)
    rows = await gateway.usage_rows()
    assert [row["cost_micros"] for row in rows][:2] == [cost_of(20, 30), cost_of(5, 7)]


async def test_no_budget_headers_without_budgets_and_new_budgets_apply_at_once(
    gateways: AdmissionGateways,
) -> None:
    gateway = await gateways.start()
    response = await gateway.chat(body())
    assert response.status_code == 200 and budget_headers(response) == {}
    # The principal (with its budgets) is cached; an admin update refreshes it in this process.
    await set_budgets(gateway.client, gateway.tenant, org_daily_budget_usd=3)
    response = await gateway.chat(body())
    assert response.headers["x-budget-org-daily-limit-usd"] == "3.000000"


async def test_org_budget_is_shared_by_its_projects_and_named_in_the_refusal(
    gateways: AdmissionGateways, fakes: Fakes
) -> None:
    gateway = await gateways.start()
    payload = body()
    reservation = worst_case(payload)
    fakes.openai.set_default(exact_reply(payload))
    await set_budgets(gateway.client, gateway.tenant, org_monthly_budget_usd=usd(2 * reservation))
    second_project = (
        await gateway.client.post(
            "/v1/admin/projects",
            json={"org_id": gateway.tenant.org_id, "name": "second"},
            headers=admin_headers(),
        )
    ).json()
    other = {"authorization": f"Bearer {second_project['api_key']}"}
    assert (await gateway.chat(payload)).status_code == 200
    assert (await gateway.client.post("/v1/chat/completions", json=payload, headers=other)).status_code == 200
    refused = await gateway.chat(payload)
    assert_budget_refusal(refused, f"org monthly budget of {usd_text(2 * reservation)} exceeded")


async def test_a_request_larger_than_the_whole_budget_says_so(gateways: AdmissionGateways) -> None:
    gateway = await gateways.start()
    payload = body(max_tokens=100_000)
    await set_budgets(gateway.client, gateway.tenant, project_daily_budget_usd=0.01)
    response = await gateway.chat(payload)
    assert_budget_refusal(response, "project daily budget of $0.01 exceeded")
    assert "more than the whole budget" in response.json()["error"]["message"]


async def test_reservation_is_released_on_upstream_error(gateways: AdmissionGateways, fakes: Fakes) -> None:
    gateway = await gateways.start()
    payload = body()
    reservation = worst_case(payload)
    budget = reservation + reservation // 2
    await set_budgets(gateway.client, gateway.tenant, project_daily_budget_usd=usd(budget))
    fakes.openai.enqueue(Reply.error(400, "bad request upstream"), Reply.error(400, "again"))
    assert (await gateway.chat(payload)).status_code == 400
    assert (await gateway.chat({**payload, "stream": True})).status_code == 400
    response = await gateway.chat(payload)
    assert response.status_code == 200
    assert response.headers["x-budget-project-daily-remaining-usd"] == usd_header(budget - reservation)


@pytest.mark.parametrize("server", SERVERS)
async def test_reservation_is_held_in_flight_and_released_on_client_cancel(
    gateways: AdmissionGateways, fakes: Fakes, server: str
) -> None:
    payload = body()
    reservation = worst_case(payload)
    budget = reservation + reservation // 2
    async with (
        gateways.served(server) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        tenant = await create_tenant(client)
        await set_budgets(client, tenant, project_daily_budget_usd=usd(budget))
        fakes.openai.enqueue(Reply.text("slow", hang=True))
        fakes.openai.set_default(exact_reply(payload))

        async def hanging() -> None:
            await client.post("/v1/chat/completions", json=payload, headers=tenant.headers, timeout=30)

        task = asyncio.create_task(hanging())
        await fakes.openai.wait_for_requests(1)
        # The hanging request holds its reservation: nothing else fits.
        held = await client.post("/v1/chat/completions", json=payload, headers=tenant.headers)
        assert_budget_refusal(held, "project daily budget")
        task.cancel()  # the client goes away; the gateway cancels the upstream call and releases
        await asyncio.gather(task, return_exceptions=True)
        await fakes.openai.wait_disconnected(1)
        response = await _first_admitted(client, payload, tenant.headers)
        assert response.headers["x-budget-project-daily-remaining-usd"] == usd_header(budget - reservation)


async def _first_admitted(
    client: httpx.AsyncClient, payload: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """The release runs right after the disconnect is noticed; poll for it instead of sleeping blindly."""
    deadline = time.monotonic() + 5
    while True:
        response = await client.post("/v1/chat/completions", json=payload, headers=headers)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response
        await asyncio.sleep(0.05)


async def test_unknown_price_is_refused_only_where_a_budget_applies(gateways: AdmissionGateways) -> None:
    gateway = await gateways.start()
    payload = body(model="openai/gpt-omnigate-unpriced")
    assert (await gateway.chat(payload)).status_code == 200  # no budget: served, cost recorded as unknown
    await set_budgets(gateway.client, gateway.tenant, project_monthly_budget_usd=5)
    response = await gateway.chat(payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "model_price_unknown" and "project monthly budget" in error["message"]
    assert (await gateway.chat(body())).status_code == 200  # priced models are unaffected


async def test_fallback_models_reserve_at_the_highest_price(gateways: AdmissionGateways) -> None:
    gateway = await gateways.start()
    payload = body(fallback_models=["claude-sonnet-4-5"])
    await set_budgets(gateway.client, gateway.tenant, project_daily_budget_usd=10)
    response = await gateway.chat(payload)
    assert response.status_code == 200, response.text
    expected = worst_case(payload, price="anthropic/claude-sonnet-4-5")
    assert expected > worst_case(payload)
    assert response.headers["x-budget-project-daily-remaining-usd"] == usd_header(10_000_000 - expected)


async def test_counters_are_rebuilt_from_usage_records_after_a_restart(
    gateways: AdmissionGateways, fakes: Fakes
) -> None:
    payload = body()
    reservation = worst_case(payload)
    budget = 3 * reservation
    fakes.openai.set_default(exact_reply(payload))
    async with gateways.running() as first:
        tenant = first.tenant
        await set_budgets(
            first.client, tenant, project_daily_budget_usd=usd(budget), org_monthly_budget_usd=1
        )
        assert (await first.chat(payload)).status_code == 200
        assert (await first.chat(payload)).status_code == 200
    # A new process on the same database with empty shared state (a new Redis prefix, or new memory).
    async with gateways.running(tenant=tenant, fresh_state=True) as second:
        response = await second.chat(payload)
        assert response.status_code == 200, response.text
        assert response.headers["x-budget-project-daily-remaining-usd"] == "0.000000"
        assert response.headers["x-budget-org-monthly-remaining-usd"] == usd_header(
            1_000_000 - 3 * reservation
        )
        assert_budget_refusal(await second.chat(payload), "project daily budget")


async def test_counters_lost_mid_window_are_rebuilt_before_admitting(
    gateways: AdmissionGateways, fakes: Fakes
) -> None:
    gateway = await gateways.start()
    payload = body()
    reservation = worst_case(payload)
    fakes.openai.set_default(exact_reply(payload))
    await set_budgets(gateway.client, gateway.tenant, project_daily_budget_usd=usd(2 * reservation))
    assert (await gateway.chat(payload)).status_code == 200
    await gateway.runtime.usage_writer.flush()
    window = day_window(time.time()).label
    for suffix in ("", ":seeded"):  # the shared state loses the window's counter (flush, failover)
        await gateway.runtime.state.delete(f"budget:project:{gateway.tenant.project_id}:{window}{suffix}")
    response = await gateway.chat(payload)
    assert response.status_code == 200
    assert response.headers["x-budget-project-daily-remaining-usd"] == "0.000000"
    assert_budget_refusal(await gateway.chat(payload), "project daily budget")


async def test_daily_and_monthly_windows_roll_over_at_utc_boundaries(
    gateways: AdmissionGateways, fakes: Fakes
) -> None:
    # Far-future windows: the usage records (stamped with the real time) all lie before them.
    clock = FakeClock(utc("2099-03-30T23:59:59.999"))
    gateway = await gateways.start(clock=clock)
    payload = body()
    r = worst_case(payload)
    fakes.openai.set_default(exact_reply(payload))
    await set_budgets(
        gateway.client,
        gateway.tenant,
        project_daily_budget_usd=usd(2 * r),
        project_monthly_budget_usd=usd(3 * r),
    )

    async def remaining() -> tuple[str, str]:
        response = await gateway.chat(payload)
        assert response.status_code == 200, response.text
        return (
            response.headers["x-budget-project-daily-remaining-usd"],
            response.headers["x-budget-project-monthly-remaining-usd"],
        )

    assert await remaining() == (usd_header(r), usd_header(2 * r))
    assert await remaining() == (usd_header(0), usd_header(r))
    assert_budget_refusal(await gateway.chat(payload), "project daily budget")
    clock.set("2099-03-31T00:00:00")  # a new day, the same month
    assert await remaining() == (usd_header(r), usd_header(0))
    assert_budget_refusal(await gateway.chat(payload), "project monthly budget")
    clock.set("2099-04-01T00:00:00")  # a new month
    assert await remaining() == (usd_header(r), usd_header(2 * r))


async def test_blocking_the_budget_plugin_disables_budgets(gateways: AdmissionGateways) -> None:
    gateway = await gateways.start(OMNIGATE_BLOCK_PLUGINS="budget")
    await set_budgets(gateway.client, gateway.tenant, project_daily_budget_usd=0)
    response = await gateway.chat(body())
    assert response.status_code == 200 and budget_headers(response) == {}
    assert "budget" not in dict(gateway.runtime.plugins.policies)
