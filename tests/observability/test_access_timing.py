"""The access log and observers time a request to its last response byte, not to the app's return."""

from __future__ import annotations

import asyncio

from omnigate.middleware.access_log import AccessLogMiddleware
from omnigate.observe import RequestOutcome
from omnigate.types import Message, Receive, Scope, Send

SCOPE: Scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}


async def receive() -> Message:
    return {"type": "http.disconnect"}


async def discard(message: Message) -> None:
    return None


async def test_work_after_the_last_byte_is_not_latency() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await asyncio.sleep(0.05)  # the body is still being sent: this is latency
        await send({"type": "http.response.body", "body": b"b"})
        await asyncio.sleep(0.3)  # bookkeeping after the answer (settling a reservation, say)

    seen: list[RequestOutcome] = []
    await AccessLogMiddleware(app, [seen.append])(dict(SCOPE), receive, discard)
    assert seen[0].status == 200
    assert 50 <= seen[0].duration_ms < 250


async def test_an_app_that_never_finishes_its_body_is_timed_to_its_return() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await asyncio.sleep(0.1)
        raise RuntimeError("gone mid-body")

    seen: list[RequestOutcome] = []
    try:
        await AccessLogMiddleware(app, [seen.append])(dict(SCOPE), receive, discard)
    except RuntimeError:
        pass
    assert seen[0].duration_ms >= 100
