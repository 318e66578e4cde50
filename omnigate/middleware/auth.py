"""Authenticates by route class (from the ASGI scope path, never the Host header) and puts the principal in scope."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from omnigate.errors import AuthenticationError, OmnigateError, PermissionDeniedError
from omnigate.http import get_header, send_error
from omnigate.types import SCOPE_IS_ADMIN, SCOPE_PRINCIPAL, ASGIApp, Receive, Scope, Send


class RouteClass(enum.Enum):
    PUBLIC = "public"
    PROJECT = "project"
    ADMIN = "admin"


def classify(path: str) -> RouteClass:
    """Which credential a path needs. Anything under /v1 is protected; admin is /v1/admin and below."""
    if path == "/v1/admin" or path.startswith("/v1/admin/"):
        return RouteClass.ADMIN
    if path == "/v1" or path.startswith("/v1/"):
        return RouteClass.PROJECT
    return RouteClass.PUBLIC


def presented_project_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    api_key = get_header(headers, b"x-api-key")
    if api_key:
        return api_key.decode("latin-1").strip()
    authorization = get_header(headers, b"authorization")
    if authorization:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


Resolver = Callable[[str], Awaitable[Any]]


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        resolve_key: Resolver,
        admin_key: str | None,
        record_use: Callable[[Any], None] | None = None,
    ) -> None:
        self.app = app
        self.resolve_key = resolve_key
        self.admin_key = admin_key.encode() if admin_key else None
        self.record_use = record_use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route_class = classify(scope["path"])
        try:
            if route_class is RouteClass.ADMIN:
                self._check_admin(scope["headers"])
                scope[SCOPE_IS_ADMIN] = True
            elif route_class is RouteClass.PROJECT:
                scope[SCOPE_PRINCIPAL] = await self._project_principal(scope["headers"])
        except OmnigateError as error:
            await send_error(send, error)
            return
        await self.app(scope, receive, send)

    def _check_admin(self, headers: list[tuple[bytes, bytes]]) -> None:
        if self.admin_key is None:
            raise PermissionDeniedError("the admin API is disabled: set ADMIN_API_KEY to enable it")
        presented = get_header(headers, b"x-admin-key")
        if presented is None:
            if presented_project_key(headers) is not None:
                raise PermissionDeniedError(
                    "admin routes need the admin key in x-admin-key; project keys are not accepted"
                )
            raise AuthenticationError("missing admin key: send it in the x-admin-key header")
        if not hmac.compare_digest(presented, self.admin_key):
            raise AuthenticationError("invalid admin key")

    async def _project_principal(self, headers: list[tuple[bytes, bytes]]) -> Any:
        key = presented_project_key(headers)
        if key is None:
            raise AuthenticationError(
                "missing API key: send it as 'Authorization: Bearer <key>' or in the x-api-key header"
            )
        principal = await self.resolve_key(key)
        if principal is None:
            raise AuthenticationError("invalid or revoked API key")
        if self.record_use is not None:
            self.record_use(principal)  # synchronous: last_used_at is written behind the request
        return principal
