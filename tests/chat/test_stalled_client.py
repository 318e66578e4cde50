"""A streaming client that stays connected but stops reading is let go after CLIENT_STALL_TIMEOUT_S:
the upstream is closed, the request recorded as cancelled (client_stalled), its slot freed (STR-4)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import orjson
import pytest

from omnigate.cli.servers import SERVERS
from omnigate.testing import Reply
from omnigate.testing.pytest_plugin import serve_gateway
from tests.chat.conftest import Fakes, Served, create_tenant, user
from tests.chat.test_streaming import wait_for_usage_row

# Far more than the socket buffers between a non-reading client and the gateway can hold.
PIECES = ["x" * 65536] * 400


async def send_stream_request(port: int, key: str) -> socket.socket:
    """A stream request on a raw socket with a small receive buffer, whose answer is never read."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [user("x")], "stream": True})
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    await loop.sock_sendall(sock, head.encode() + body)
    return sock


@pytest.mark.parametrize("server", SERVERS)
async def test_a_client_that_stops_reading_is_let_go(
    chat_env: dict[str, str], fakes: Fakes, server: str
) -> None:
    env = {**chat_env, "CLIENT_STALL_TIMEOUT_S": "1"}
    fakes.openai.enqueue(Reply.text(PIECES))
    async with serve_gateway(env, server=server) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            tenant = await create_tenant(client)
        sock = await send_stream_request(int(base_url.rsplit(":", 1)[1]), tenant.key)
        try:
            await fakes.openai.wait_disconnected(timeout_s=10)
            row = await wait_for_usage_row(Served(base_url, tenant, env["DATABASE_URL"]), timeout_s=10)
            assert (row.status, row.error_code, row.stream) == ("cancelled", "client_stalled", True)
            fakes.openai.enqueue(Reply.text("the slot is free"))
            async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
                chat = {"model": "gpt-4o-mini", "messages": [user("x")]}
                assert (
                    await client.post("/v1/chat/completions", json=chat, headers=tenant.headers)
                ).status_code == 200
        finally:
            sock.close()
