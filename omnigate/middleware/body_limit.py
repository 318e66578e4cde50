"""Refuses request bodies over MAX_REQUEST_BYTES: by Content-Length up front, and while chunked bodies stream in."""

from __future__ import annotations

from omnigate.errors import InvalidRequestError, PayloadTooLargeError
from omnigate.http import get_header, send_error
from omnigate.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = get_header(scope["headers"], b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_error(
                    send, InvalidRequestError("invalid Content-Length header", code="bad_request")
                )
                return
            if int(declared) > self.max_bytes:
                await send_error(send, self._too_large())
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"request body is larger than the limit of {self.max_bytes} bytes")
