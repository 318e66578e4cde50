"""Past MAX_IN_FLIGHT_REQUESTS chat requests a process sheds new ones at once: 503 overloaded with
retry-after, recorded and counted, health untouched; the count returns to zero (LOAD-3)."""

from __future__ import annotations

import asyncio
from typing import Any

from omnigate.testing import Reply
from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import Fakes, Gateway, create_tenant, user
from tests.observability.test_prometheus import scrape, value

CHAT = {"model": "gpt-4o-mini", "messages": [user("x")]}


async def until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_requests_past_the_limit_are_shed_and_the_count_returns_to_zero(
    chat_env: dict[str, str], fakes: Fakes
) -> None:
    async with run_gateway({**chat_env, "MAX_IN_FLIGHT_REQUESTS": "2"}) as client:
        gateway = Gateway(client, await create_tenant(client))
        runtime = gateway.runtime
        fakes.openai.enqueue(Reply.text("slow one", delay_s=1.0), Reply.text("slow two", delay_s=1.0))
        stream = {**CHAT, "stream": True}
        held = [asyncio.create_task(gateway.chat(CHAT)), asyncio.create_task(gateway.chat(stream))]
        await until(lambda: runtime.in_flight == 2)

        shed = await gateway.chat(CHAT)
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert shed.json()["error"]["code"] == "overloaded" and shed.headers["x-request-id"]
        assert (await client.get("/health/ready")).status_code == 200
        samples = await scrape(client)
        assert value(samples, "omnigate_in_flight_requests") == 2
        assert value(samples, "omnigate_refusals_total", reason="overloaded") == 1

        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        assert runtime.in_flight == 0 and fakes.openai.request_count == 2
        fakes.openai.enqueue(Reply.text("room again"))
        assert (await gateway.chat(CHAT)).status_code == 200
        rows = await gateway.usage_rows()
        refused = [row for row in rows if row["status"] == "error"]
        assert [(r["http_status"], r["error_code"]) for r in refused] == [(503, "overloaded")]
        assert sum(row["status"] == "ok" for row in rows) == 3


async def test_zero_means_no_limit(chat_env: dict[str, str], fakes: Fakes) -> None:
    async with run_gateway({**chat_env, "MAX_IN_FLIGHT_REQUESTS": "0"}) as client:
        gateway = Gateway(client, await create_tenant(client))
        fakes.openai.set_default(Reply.text("fine", delay_s=0.2))
        responses = await asyncio.gather(*(gateway.chat(CHAT) for _ in range(20)))
        assert {r.status_code for r in responses} == {200}
        assert gateway.runtime.in_flight == 0
