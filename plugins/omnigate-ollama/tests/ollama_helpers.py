"""Helpers shared by the plugin's tests: a gateway with this plugin registered and one project key."""

from __future__ import annotations

from typing import Any

import attrs
import httpx
from omnigate.testing.pytest_plugin import OMNIGATE_TEST_ADMIN_KEY, GatewayFactory

import omnigate_ollama.plugin

ADMIN = {"x-admin-key": OMNIGATE_TEST_ADMIN_KEY}
PLUGINS = [("ollama", omnigate_ollama.plugin)]


@attrs.define
class Gateway:
    client: httpx.AsyncClient
    key: str

    async def chat(self, body: dict[str, Any], path: str = "/v1/chat/completions") -> httpx.Response:
        return await self.client.post(path, json=body, headers={"authorization": f"Bearer {self.key}"})


async def start_gateway(factory: GatewayFactory, **env: str) -> Gateway:
    """A gateway with the plugin passed explicitly (no installation needed) and one project."""
    client = await factory(plugins=PLUGINS, LOG_LEVEL="WARNING", **env)
    return Gateway(client, await create_project(client))


async def create_project(client: httpx.AsyncClient) -> str:
    """An organisation and a project through the admin API; returns the project's key."""
    org = (await client.post("/v1/admin/orgs", json={"name": "acme"}, headers=ADMIN)).json()
    project = (
        await client.post("/v1/admin/projects", json={"org_id": org["id"], "name": "web"}, headers=ADMIN)
    ).json()
    return str(project["api_key"])


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}
