"""Fixtures for the tenancy tests: the chat fixtures (fakes, gateway) and a loopback sentinel listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import attrs
import pytest

from tests.chat.conftest import chat_env, fakes, gateway  # noqa: F401  (fixtures reused here)


@attrs.define
class Sentinel:
    """A TCP listener on loopback that counts connections; a guarded path must never reach it."""

    port: int
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture
async def sentinel() -> AsyncIterator[Sentinel]:
    found = Sentinel(port=0)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found
