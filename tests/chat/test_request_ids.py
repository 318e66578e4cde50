"""A client's x-request-id is echoed and recorded, but never the usage record's key (BILL-1)."""

from __future__ import annotations

import attrs

from omnigate.store.usage import list_usage
from omnigate.testing import Reply
from tests.chat.conftest import Fakes, Gateway, create_tenant, user

CHAT = {"model": "gpt-4o-mini", "messages": [user("x")]}


async def test_requests_repeating_a_client_id_each_keep_their_record(gateway: Gateway, fakes: Fakes) -> None:
    for text in ("first", "second"):
        fakes.openai.enqueue(Reply.text(text))
        response = await gateway.chat(CHAT, **{"x-request-id": "retry-42"})
        assert response.status_code == 200 and response.headers["x-request-id"] == "retry-42"
    rows = await gateway.usage_rows()
    assert [row["client_request_id"] for row in rows] == ["retry-42", "retry-42"]
    assert len({row["request_id"] for row in rows}) == 2 and "retry-42" not in {r["request_id"] for r in rows}
    assert all(row["status"] == "ok" and row["cost_micros"] for row in rows)


async def test_another_tenants_id_cannot_displace_a_record(gateway: Gateway, fakes: Fakes) -> None:
    other = await create_tenant(gateway.client, "other")
    fakes.openai.enqueue(Reply.text("theirs"), Reply.text("ours"))
    headers = {**other.headers, "x-request-id": "req_shared"}
    assert (await gateway.client.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code == 200
    assert (await gateway.chat(CHAT, **{"x-request-id": "req_shared"})).status_code == 200
    (ours,) = await gateway.usage_rows()
    assert ours["client_request_id"] == "req_shared" and ours["status"] == "ok"
    (theirs,) = await list_usage(gateway.runtime.db, other.project_id)
    assert attrs.asdict(theirs)["client_request_id"] == "req_shared"


async def test_a_minted_id_is_the_records_key(gateway: Gateway, fakes: Fakes) -> None:
    fakes.openai.enqueue(Reply.text("answer"))
    response = await gateway.chat(CHAT)
    (row,) = await gateway.usage_rows()
    assert row["request_id"] == response.headers["x-request-id"] and row["client_request_id"] is None
