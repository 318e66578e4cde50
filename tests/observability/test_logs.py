"""LOG_FORMAT=json: one object per line with the request's fields, and no secret in any of it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from omnigate.testing import Reply, Usage
from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import Fakes, Gateway, create_tenant, user
from tests.conftest import ADMIN_KEY, admin_headers

ACCESS_FIELDS = {
    "request_id",
    "project",
    "key_id",
    "model",
    "provider",
    "status",
    "latency_ms",
    "attempts",
    "cached",
}


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """Secrets found whole, or by their last 12 characters (a display prefix may legitimately appear)."""
    return [name for name, secret in secrets.items() if secret in text or secret[-12:] in text]


async def test_json_logs_carry_request_fields_and_no_secret(
    chat_env: dict[str, str], fakes: Fakes, capsys: pytest.CaptureFixture[str]
) -> None:
    byok = f"sk-ant-byok-canary-{uuid.uuid4().hex}"
    metrics_token = f"metrics-canary-{uuid.uuid4().hex}"
    gateway_keys = {
        "OPENAI_API_KEY": f"sk-canary-openai-{uuid.uuid4().hex}",
        "ANTHROPIC_API_KEY": f"sk-ant-canary-{uuid.uuid4().hex}",
        "GEMINI_API_KEY": f"AIzaCanary{uuid.uuid4().hex}",
        "AZURE_OPENAI_API_KEY": f"azure-canary-{uuid.uuid4().hex}",
    }
    env = {
        **chat_env,
        **gateway_keys,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "METRICS_TOKEN": metrics_token,
    }
    bodies: list[str] = []
    async with run_gateway(env) as client:
        gw = Gateway(client, await create_tenant(client))
        put = await client.put("/v1/credentials/anthropic", json={"api_key": byok}, headers=gw.tenant.headers)
        assert put.status_code in (200, 201), put.text
        fakes.openai.enqueue(Reply.text("fine", usage=Usage(input=10, output=2)))
        fakes.anthropic.enqueue(Reply.text("byok", usage=Usage(input=10, output=2)))
        fakes.openai.enqueue(
            Reply.error(401, f"Incorrect API key provided: {gateway_keys['OPENAI_API_KEY']}")
        )
        fakes.anthropic.enqueue(Reply.error(500, "boom"))
        fakes.anthropic.enqueue(Reply.error(500, "boom"))
        fakes.anthropic.enqueue(Reply.error(500, "boom"))
        fakes.gemini.enqueue(Reply.text("streamed", usage=Usage(input=4, output=4)))
        requests: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
            (
                "POST",
                "/v1/chat/completions",
                {"model": "gpt-4o-mini", "messages": [user("a")]},
                gw.tenant.headers,
            ),
            ("POST", "/v1/chat", {"model": "claude-sonnet-4-5", "messages": [user("b")]}, gw.tenant.headers),
            (
                "POST",
                "/v1/chat/completions",
                {"model": "gpt-4o-mini", "messages": [user("c")]},
                gw.tenant.headers,
            ),
            (
                "POST",
                "/v1/chat/completions",
                {"model": "claude-sonnet-4-5", "messages": [user("d")]},
                gw.tenant.headers,
            ),
            (
                "POST",
                "/v1/chat/completions",
                {"model": "gemini-2.5-flash", "messages": [user("e")], "stream": True},
                gw.tenant.headers,
            ),
            ("GET", "/v1/me", None, {"authorization": f"Bearer {gw.tenant.key[:-2]}xx"}),
            ("GET", "/v1/admin/orgs", None, {"x-admin-key": ADMIN_KEY[:-1] + "0"}),
            ("GET", "/v1/admin/orgs", None, admin_headers()),
            ("GET", "/v1/credentials/anthropic", None, gw.tenant.headers),
            ("GET", "/metrics", None, {"authorization": f"Bearer {metrics_token}"}),
            ("GET", "/metrics", None, {"authorization": f"Bearer {metrics_token[:-1]}"}),
            ("GET", "/v1/metrics", None, gw.tenant.headers),
        ]
        for method, path, body, headers in requests:
            response = await client.request(method, path, json=body, headers=headers)
            bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        await gw.runtime.usage_writer.flush()
    secrets = {
        "admin key": ADMIN_KEY,
        "project key": gw.tenant.key,
        "byok secret": byok,
        "metrics token": metrics_token,
        **gateway_keys,
    }
    logs = capsys.readouterr().err
    assert not leaks(logs, secrets), leaks(logs, secrets)
    assert not leaks("\n".join(bodies), secrets), leaks("\n".join(bodies), secrets)
    lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
    access = [line for line in lines if line.get("logger") == "omnigate.access"]
    assert len(access) >= len(requests)
    chats = [line for line in access if line["path"].startswith("/v1/chat")]
    assert len(chats) == 5
    for line in chats:
        assert ACCESS_FIELDS <= set(line), ACCESS_FIELDS - set(line)
        assert line["request_id"].startswith("req_") and line["project"] == gw.tenant.project_id
        assert "cost_micros" in line
    providers = {line["provider"] for line in chats}
    assert providers == {"openai", "anthropic", "gemini"}
    assert any(line["status"] == 200 and line["cost_micros"] for line in chats)
