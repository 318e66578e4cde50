"""Every error leaves in OpenAI's envelope with the right status, including router errors and 500s."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from omnigate import hookimpl
from omnigate.types import ASGIApp, Receive, Scope, Send
from tests.conftest import ClientFactory, admin_headers


class ExplodingPlugin:
    """An ASGI wrapper that fails on one path, to exercise the 500 path."""

    @hookimpl
    def omnigate_asgi_wrapper(self, settings: Any) -> Any:
        def wrap(app: ASGIApp) -> ASGIApp:
            async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
                if scope.get("path") == "/v1/admin/explode":
                    raise RuntimeError("secret-token-should-not-leak")
                await app(scope, receive, send)

            return wrapped

        return wrap


async def test_unknown_route_is_404_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.headers["content-type"] == "application/json"


async def test_wrong_method_is_405_envelope_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health/live")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]


async def test_unhandled_error_is_500_envelope_without_details(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(plugins=[("exploding", ExplodingPlugin())])
    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError):
        await client.get("/v1/admin/explode", headers=admin_headers())
    # httpx's ASGI transport re-raises server exceptions; drive the app raw to see the response too.
    app = client._transport.app  # type: ignore[attr-defined]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/admin/explode",
        "raw_path": b"/v1/admin/explode",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-admin-key", admin_headers()["x-admin-key"].encode()), (b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    with pytest.raises(RuntimeError):
        await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert start["status"] == 500
    assert dict(start["headers"])[b"x-request-id"]
    assert b"secret-token" not in body and b'"type":"api_error"' in body


async def test_body_over_limit_is_413_by_content_length_and_when_chunked(make_client: ClientFactory) -> None:
    client = await make_client(MAX_REQUEST_BYTES="1000")
    big = b'{"name": "' + b"x" * 2000 + b'"}'
    response = await client.post(
        "/v1/admin/orgs", content=big, headers={**admin_headers(), "content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 300

    response = await client.post(
        "/v1/admin/orgs", content=chunks(), headers={**admin_headers(), "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert (await client.get("/v1/admin/orgs", headers=admin_headers())).json()["data"] == []
    small = await client.post("/v1/admin/orgs", json={"name": "ok"}, headers=admin_headers())
    assert small.status_code == 201


async def test_garbage_content_length_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/admin/orgs", content=b"{}", headers={**admin_headers(), "content-length": "abc"}
    )
    assert response.status_code == 400
