"""Admin endpoints for organisations and projects (create, list, show, update)."""

from __future__ import annotations

from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnigate.admin.common import (
    check_limit,
    check_name,
    iso_time,
    json_response,
    list_response,
    micros_to_usd,
    read_payload,
    runtime_of,
    usd_to_micros,
)
from omnigate.errors import InvalidRequestError, NotFoundError
from omnigate.store import tenants
from omnigate.store.records import Organization, Project, UnknownOrganizationError


@attrs.frozen
class OrgPayload:
    name: str | None = None
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None


@attrs.frozen
class ProjectPayload:
    org_id: str | None = None
    name: str | None = None
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    rpm: int | None = None
    tpm: int | None = None


def render_org(org: Organization) -> dict[str, Any]:
    return {
        "id": org.id,
        "object": "organization",
        "name": org.name,
        "daily_budget_usd": micros_to_usd(org.daily_budget_micros),
        "monthly_budget_usd": micros_to_usd(org.monthly_budget_micros),
        "created_at": iso_time(org.created_at),
        "updated_at": iso_time(org.updated_at),
    }


def render_project(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "object": "project",
        "org_id": project.org_id,
        "name": project.name,
        "daily_budget_usd": micros_to_usd(project.daily_budget_micros),
        "monthly_budget_usd": micros_to_usd(project.monthly_budget_micros),
        "rpm": project.rpm,
        "tpm": project.tpm,
        "created_at": iso_time(project.created_at),
        "updated_at": iso_time(project.updated_at),
    }


def _budget_changes(payload: OrgPayload | ProjectPayload, raw: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "name" in raw:
        if payload.name is None:
            raise InvalidRequestError("name: must not be null", param="name")
        changes["name"] = check_name(payload.name)
    for field, column in (
        ("daily_budget_usd", "daily_budget_micros"),
        ("monthly_budget_usd", "monthly_budget_micros"),
    ):
        if field in raw:
            changes[column] = usd_to_micros(getattr(payload, field), field)
    return changes


async def create_org(request: Request) -> Response:
    payload, raw = await read_payload(request, OrgPayload)
    if payload.name is None:
        raise InvalidRequestError("name: required field missing", param="name")
    changes = _budget_changes(payload, raw)
    org = await tenants.create_org(runtime_of(request).db, **changes)
    return json_response(render_org(org), status=201)


async def list_orgs(request: Request) -> Response:
    orgs = await tenants.list_orgs(runtime_of(request).db)
    return list_response([render_org(org) for org in orgs])


async def show_org(request: Request) -> Response:
    org = await tenants.get_org(runtime_of(request).db, request.path_params["org_id"])
    if org is None:
        raise NotFoundError("no such organization")
    return json_response(render_org(org))


async def update_org(request: Request) -> Response:
    payload, raw = await read_payload(request, OrgPayload)
    runtime = runtime_of(request)
    org = await tenants.update_org(runtime.db, request.path_params["org_id"], **_budget_changes(payload, raw))
    if org is None:
        raise NotFoundError("no such organization")
    if runtime.key_cache is not None:
        runtime.key_cache.invalidate()  # cached principals carry the organization's budgets
    return json_response(render_org(org))


def _project_changes(payload: ProjectPayload, raw: dict[str, Any]) -> dict[str, Any]:
    changes = _budget_changes(payload, raw)
    for field in ("rpm", "tpm"):
        if field in raw:
            changes[field] = check_limit(getattr(payload, field), field)
    return changes


async def create_project(request: Request) -> Response:
    payload, raw = await read_payload(request, ProjectPayload)
    if payload.org_id is None:
        raise InvalidRequestError("org_id: required field missing", param="org_id")
    if payload.name is None:
        raise InvalidRequestError("name: required field missing", param="name")
    changes = _project_changes(payload, raw)
    try:
        project, key, plaintext = await tenants.create_project(
            runtime_of(request).db, payload.org_id, **changes
        )
    except UnknownOrganizationError:
        raise NotFoundError("no such organization", param="org_id") from None
    body = render_project(project)
    body["api_key"] = plaintext
    body["api_key_id"] = key.id
    return json_response(body, status=201)


async def list_projects(request: Request) -> Response:
    org_id = request.query_params.get("org_id")
    projects = await tenants.list_projects(runtime_of(request).db, org_id=org_id)
    return list_response([render_project(project) for project in projects])


async def show_project(request: Request) -> Response:
    project = await tenants.get_project(runtime_of(request).db, request.path_params["project_id"])
    if project is None:
        raise NotFoundError("no such project")
    return json_response(render_project(project))


async def update_project(request: Request) -> Response:
    payload, raw = await read_payload(request, ProjectPayload)
    if "org_id" in raw:
        raise InvalidRequestError("org_id: a project cannot move to another organization", param="org_id")
    runtime = runtime_of(request)
    project = await tenants.update_project(
        runtime.db, request.path_params["project_id"], **_project_changes(payload, raw)
    )
    if project is None:
        raise NotFoundError("no such project")
    if runtime.key_cache is not None:
        runtime.key_cache.invalidate()  # cached principals carry the project's limits
    return json_response(render_project(project))


routes = [
    Route("/v1/admin/orgs", create_org, methods=["POST"]),
    Route("/v1/admin/orgs", list_orgs, methods=["GET"]),
    Route("/v1/admin/orgs/{org_id}", show_org, methods=["GET"]),
    Route("/v1/admin/orgs/{org_id}", update_org, methods=["PATCH"]),
    Route("/v1/admin/projects", create_project, methods=["POST"]),
    Route("/v1/admin/projects", list_projects, methods=["GET"]),
    Route("/v1/admin/projects/{project_id}", show_project, methods=["GET"]),
    Route("/v1/admin/projects/{project_id}", update_project, methods=["PATCH"]),
]
