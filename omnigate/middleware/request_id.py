"""Reads or mints the request id, exposes it to logs and the scope, and echoes it on every response."""

from __future__ import annotations

import itertools
import os
import re

from omnigate.http import get_header
from omnigate.logs import request_id_var
from omnigate.types import SCOPE_CLIENT_REQUEST_ID, SCOPE_REQUEST_ID, ASGIApp, Message, Receive, Scope, Send

_SANE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


# Ids only need to be unique, not secret: a random per-process prefix and a counter cost no system call
# per request (uuid4 reads os.urandom each time). Each worker process imports this anew.
_PROCESS_PREFIX = os.urandom(8).hex()
_SEQUENCE = itertools.count(int.from_bytes(os.urandom(4), "big"))


def mint_request_id() -> str:
    return f"req_{_PROCESS_PREFIX}{next(_SEQUENCE) & 0xFFFFFFFFFFFFFFFF:016x}"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = get_header(scope["headers"], b"x-request-id")
        if incoming and _SANE.match(incoming):
            request_id = scope[SCOPE_CLIENT_REQUEST_ID] = incoming.decode("ascii")
        else:
            request_id = mint_request_id()
        scope[SCOPE_REQUEST_ID] = request_id
        header = (b"x-request-id", request_id.encode("ascii"))
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # ASGI header names are lowercase: an inner app's own x-request-id is replaced.
                headers = [pair for pair in message.get("headers", ()) if pair[0] != b"x-request-id"]
                headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
