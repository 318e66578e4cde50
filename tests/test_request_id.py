"""Request ids: echoed when sane, minted otherwise, on every response and in every log line."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from tests.conftest import ClientFactory


@pytest.mark.parametrize("incoming", ["abc-123", "trace.id:42_x", "A" * 128])
async def test_sane_request_id_is_echoed(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/health/live", headers={"x-request-id": incoming})
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize("incoming", ["", "has space", "A" * 129, "semi;colon", "new\tline", "ünï"])
async def test_insane_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/health/live", headers={"x-request-id": incoming.encode()})
    minted = response.headers["x-request-id"]
    assert minted.startswith("req_") and minted != incoming


async def test_request_id_on_errors_too(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/nope"), await client.get("/v1/me"), await client.delete("/version")):
        assert response.status_code >= 400 and response.headers["x-request-id"].startswith("req_")
    ids = {(await client.get("/version")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


async def test_json_logs_carry_the_request_id_and_no_secret(make_client: ClientFactory) -> None:
    client = await make_client(LOG_FORMAT="json", LOG_LEVEL="INFO", OPENAI_API_KEY="sk-very-secret")
    stream = io.StringIO()
    handler = next(h for h in logging.getLogger("omnigate").handlers if getattr(h, "_omnigate", False))
    original = handler.stream  # type: ignore[attr-defined]
    handler.stream = stream  # type: ignore[attr-defined]
    try:
        await client.get("/v1/me", headers={"x-request-id": "log-check-1", "x-api-key": "og-secret-value"})
    finally:
        handler.stream = original  # type: ignore[attr-defined]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "omnigate.access"]
    assert access and access[-1]["request_id"] == "log-check-1" and access[-1]["status"] == 401
    assert "og-secret-value" not in stream.getvalue() and "sk-very-secret" not in stream.getvalue()
