"""`GET /v1/me`: who the presented project key is (project, organization, key id)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnigate.admin.common import json_response
from omnigate.types import SCOPE_PRINCIPAL


async def me(request: Request) -> Response:
    principal = request.scope[SCOPE_PRINCIPAL]
    return json_response(
        {
            "object": "principal",
            "org_id": principal.org_id,
            "project_id": principal.project_id,
            "key_id": principal.key_id,
            "allowed_models": list(principal.allowed_models)
            if principal.allowed_models is not None
            else None,
        }
    )


routes = [Route("/v1/me", me, methods=["GET"])]
