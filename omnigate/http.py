"""Small raw-ASGI response helpers shared by middleware and endpoints."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from omnigate.errors import OmnigateError
from omnigate.types import JSON, Send

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def header_pairs(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_json(send: Send, status: int, payload: JSON, headers: Mapping[str, str] | None = None) -> None:
    body = orjson.dumps(payload)
    raw_headers = [JSON_CONTENT_TYPE, (b"content-length", str(len(body)).encode())]
    raw_headers.extend(header_pairs(headers or {}))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: OmnigateError) -> None:
    await send_json(send, error.status_code, error.envelope(), error.headers)


def get_header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
