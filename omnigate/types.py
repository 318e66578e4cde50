"""Shared vocabulary: ASGI aliases, scope keys and the JSON alias."""

from __future__ import annotations

from typing import Any, TypeAlias

from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON: TypeAlias = Any
"""A value as decoded by orjson."""

SCOPE_PRINCIPAL = "omnigate.principal"
SCOPE_REQUEST_ID = "omnigate.request_id"
SCOPE_CLIENT_REQUEST_ID = "omnigate.client_request_id"  # set only when the request id is the client's
SCOPE_IS_ADMIN = "omnigate.admin"
SCOPE_OUTCOME = "omnigate.outcome"

__all__ = [
    "JSON",
    "SCOPE_CLIENT_REQUEST_ID",
    "SCOPE_IS_ADMIN",
    "SCOPE_OUTCOME",
    "SCOPE_PRINCIPAL",
    "SCOPE_REQUEST_ID",
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
]
