"""Bad chat input: a 400 in the surface's envelope naming the problem, and no upstream call."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chat.conftest import Fakes, Gateway, user

GOOD = [user("hi")]
BAD_BODIES: list[tuple[dict[str, Any], str | None]] = [
    ({"messages": GOOD}, "model"),
    ({"model": "gpt-4o-mini"}, "messages"),
    ({"model": "gpt-4o-mini", "messages": []}, "messages"),
    ({"model": "gpt-4o-mini", "messages": "hi"}, "messages"),
    ({"model": 4, "messages": GOOD}, "model"),
    ({"model": "openai/\u6a21\u578b", "messages": GOOD}, "model"),  # it would go out in a response header
    ({"model": "gpt-4o-mini\r\nx-injected: 1", "messages": GOOD}, "model"),
    ({"model": "gpt-4o-mini", "messages": GOOD, "fallback_models": ["gpt 4o"]}, "fallback_models"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user"}]}, "messages[0].content"),
    (
        {"model": "gpt-4o-mini", "messages": [{"role": "tool", "tool_call_id": "c9", "content": "r"}]},
        "messages[0].tool_call_id",
    ),
    (
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "not a url"}}]}
            ],
        },
        "messages[0].content[0].image_url.url",
    ),
    ({"model": "gpt-4o-mini", "messages": GOOD, "temperature": "hot"}, "temperature"),
    ({"model": "gpt-4o-mini", "messages": GOOD, "temperature": 3}, "temperature"),
    ({"model": "gpt-4o-mini", "messages": GOOD, "max_tokens": -1}, "max_tokens"),
    ({"model": "gpt-4o-mini", "messages": GOOD, "stream": "yes"}, "stream"),
    (
        {"model": "gpt-4o-mini", "messages": GOOD, "fallback_models": ["a", "b", "c", "d", "e", "f"]},
        "fallback_models",
    ),
    ({"model": "gpt-4o-mini", "messages": GOOD, "api_base": "http://169.254.169.254"}, "api_base"),
    (
        {
            "model": "gpt-4o-mini",
            "messages": GOOD,
            "tool_choice": {"type": "function", "function": {"name": "x"}},
        },
        "tool_choice.function.name",
    ),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/chat"])
async def test_bad_bodies_are_400_naming_the_field(
    gateway: Gateway, fakes: Fakes, body: dict[str, Any], param: str, path: str
) -> None:
    response = await gateway.chat(body, path=path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert param in error["message"]
    assert fakes.total_requests() == 0


async def test_malformed_json_and_non_objects(gateway: Gateway, fakes: Fakes) -> None:
    for raw in (b'{"model": ', b"[1, 2]", b"\xff\xfe", b""):
        response = await gateway.client.post(
            "/v1/chat/completions",
            content=raw,
            headers={**gateway.tenant.headers, "content-type": "application/json"},
        )
        assert response.status_code == 400, raw
    assert fakes.total_requests() == 0


async def test_key_restricted_to_models(gateway: Gateway, fakes: Fakes) -> None:
    from omnigate.store.keys import create_key

    _, plaintext = await create_key(
        gateway.runtime.db, gateway.tenant.project_id, "narrow", allowed_models=["gpt-4o-mini"]
    )
    headers = {"authorization": f"Bearer {plaintext}"}
    ok = await gateway.client.post(
        "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": GOOD}, headers=headers
    )
    assert ok.status_code == 200
    denied = await gateway.client.post(
        "/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": GOOD}, headers=headers
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "model_not_allowed"
    smuggled = await gateway.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": GOOD, "fallback_models": ["claude-sonnet-4-5"]},
        headers=headers,
    )
    assert smuggled.status_code == 403 and smuggled.json()["error"]["param"] == "fallback_models[0]"
    assert fakes.anthropic.request_count == 0
