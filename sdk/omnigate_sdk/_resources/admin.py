"""The admin API (``/v1/admin``, admin key): organisations, projects and org-wide metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omnigate_sdk._base_client import RequestOptions
from omnigate_sdk._models.admin import CreatedProject, Organization, Project
from omnigate_sdk._models.metrics import MetricsReport
from omnigate_sdk._resources._base import (
    AsyncAPIResource,
    CallOptions,
    SyncAPIResource,
    given,
    request_options,
    segment,
)
from omnigate_sdk._resources.metrics import Bucket, GroupBy, TimeArg, metrics_params
from omnigate_sdk._types import NOT_GIVEN, NotGiven

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from omnigate_sdk._client import AsyncClient, Client

ORGS = "/v1/admin/orgs"
PROJECTS = "/v1/admin/projects"


def _admin(method: str, path: str, call: CallOptions, **fields: Any) -> RequestOptions:
    # Updates (PATCH) set absolute values, so repeating one is harmless: they count as idempotent.
    return request_options(method, path, call, auth="admin", idempotent=method != "POST", **fields)


def _without_none(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _org_metrics(
    org_id: str, from_: TimeArg, to: TimeArg, group_by: str | None, bucket: str | None, call: CallOptions
) -> RequestOptions:
    params = metrics_params(from_, to, group_by, bucket)
    return _admin("GET", f"{ORGS}/{segment(org_id)}/metrics", call, params=params)


class Organizations(SyncAPIResource):
    def create(
        self,
        name: str,
        *,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        **options: Unpack[CallOptions],
    ) -> Organization:
        body = _without_none(
            name=name, daily_budget_usd=daily_budget_usd, monthly_budget_usd=monthly_budget_usd
        )
        response = self._client._send(_admin("POST", ORGS, options, json=body))
        return self._client._parse(response, Organization)

    def list(self, **options: Unpack[CallOptions]) -> list[Organization]:
        return self._client._parse_list(self._client._send(_admin("GET", ORGS, options)), Organization)

    def get(self, org_id: str, **options: Unpack[CallOptions]) -> Organization:
        response = self._client._send(_admin("GET", f"{ORGS}/{segment(org_id)}", options))
        return self._client._parse(response, Organization)

    def update(
        self,
        org_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        daily_budget_usd: float | None | NotGiven = NOT_GIVEN,
        monthly_budget_usd: float | None | NotGiven = NOT_GIVEN,
        **options: Unpack[CallOptions],
    ) -> Organization:
        """Change the given fields only; a budget set to ``None`` is removed."""
        body = given(name=name, daily_budget_usd=daily_budget_usd, monthly_budget_usd=monthly_budget_usd)
        response = self._client._send(_admin("PATCH", f"{ORGS}/{segment(org_id)}", options, json=body))
        return self._client._parse(response, Organization)

    def metrics(
        self,
        org_id: str,
        *,
        from_: TimeArg = None,
        to: TimeArg = None,
        group_by: GroupBy | None = None,
        bucket: Bucket | None = None,
        **options: Unpack[CallOptions],
    ) -> MetricsReport:
        """The organisation's statistics (``group_by="project"`` too)."""
        response = self._client._send(_org_metrics(org_id, from_, to, group_by, bucket, options))
        return self._client._parse(response, MetricsReport)


class Projects(SyncAPIResource):
    def create(
        self,
        org_id: str,
        name: str,
        *,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        **options: Unpack[CallOptions],
    ) -> CreatedProject:
        """A new project and its first API key (``api_key``, shown this once)."""
        body = _without_none(
            org_id=org_id,
            name=name,
            daily_budget_usd=daily_budget_usd,
            monthly_budget_usd=monthly_budget_usd,
            rpm=rpm,
            tpm=tpm,
        )
        response = self._client._send(_admin("POST", PROJECTS, options, json=body))
        return self._client._parse(response, CreatedProject)

    def list(self, *, org_id: str | None = None, **options: Unpack[CallOptions]) -> list[Project]:
        response = self._client._send(_admin("GET", PROJECTS, options, params={"org_id": org_id}))
        return self._client._parse_list(response, Project)

    def get(self, project_id: str, **options: Unpack[CallOptions]) -> Project:
        response = self._client._send(_admin("GET", f"{PROJECTS}/{segment(project_id)}", options))
        return self._client._parse(response, Project)

    def update(
        self,
        project_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        daily_budget_usd: float | None | NotGiven = NOT_GIVEN,
        monthly_budget_usd: float | None | NotGiven = NOT_GIVEN,
        rpm: int | None | NotGiven = NOT_GIVEN,
        tpm: int | None | NotGiven = NOT_GIVEN,
        **options: Unpack[CallOptions],
    ) -> Project:
        """Change the given fields only; a budget or limit set to ``None`` is removed."""
        body = given(
            name=name,
            daily_budget_usd=daily_budget_usd,
            monthly_budget_usd=monthly_budget_usd,
            rpm=rpm,
            tpm=tpm,
        )
        response = self._client._send(
            _admin("PATCH", f"{PROJECTS}/{segment(project_id)}", options, json=body)
        )
        return self._client._parse(response, Project)


class AsyncOrganizations(AsyncAPIResource):
    async def create(
        self,
        name: str,
        *,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        **options: Unpack[CallOptions],
    ) -> Organization:
        body = _without_none(
            name=name, daily_budget_usd=daily_budget_usd, monthly_budget_usd=monthly_budget_usd
        )
        response = await self._client._send(_admin("POST", ORGS, options, json=body))
        return self._client._parse(response, Organization)

    async def list(self, **options: Unpack[CallOptions]) -> list[Organization]:
        return self._client._parse_list(await self._client._send(_admin("GET", ORGS, options)), Organization)

    async def get(self, org_id: str, **options: Unpack[CallOptions]) -> Organization:
        response = await self._client._send(_admin("GET", f"{ORGS}/{segment(org_id)}", options))
        return self._client._parse(response, Organization)

    async def update(
        self,
        org_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        daily_budget_usd: float | None | NotGiven = NOT_GIVEN,
        monthly_budget_usd: float | None | NotGiven = NOT_GIVEN,
        **options: Unpack[CallOptions],
    ) -> Organization:
        """Change the given fields only; a budget set to ``None`` is removed."""
        body = given(name=name, daily_budget_usd=daily_budget_usd, monthly_budget_usd=monthly_budget_usd)
        response = await self._client._send(_admin("PATCH", f"{ORGS}/{segment(org_id)}", options, json=body))
        return self._client._parse(response, Organization)

    async def metrics(
        self,
        org_id: str,
        *,
        from_: TimeArg = None,
        to: TimeArg = None,
        group_by: GroupBy | None = None,
        bucket: Bucket | None = None,
        **options: Unpack[CallOptions],
    ) -> MetricsReport:
        """The organisation's statistics (``group_by="project"`` too)."""
        response = await self._client._send(_org_metrics(org_id, from_, to, group_by, bucket, options))
        return self._client._parse(response, MetricsReport)


class AsyncProjects(AsyncAPIResource):
    async def create(
        self,
        org_id: str,
        name: str,
        *,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        **options: Unpack[CallOptions],
    ) -> CreatedProject:
        """A new project and its first API key (``api_key``, shown this once)."""
        body = _without_none(
            org_id=org_id,
            name=name,
            daily_budget_usd=daily_budget_usd,
            monthly_budget_usd=monthly_budget_usd,
            rpm=rpm,
            tpm=tpm,
        )
        response = await self._client._send(_admin("POST", PROJECTS, options, json=body))
        return self._client._parse(response, CreatedProject)

    async def list(self, *, org_id: str | None = None, **options: Unpack[CallOptions]) -> list[Project]:
        response = await self._client._send(_admin("GET", PROJECTS, options, params={"org_id": org_id}))
        return self._client._parse_list(response, Project)

    async def get(self, project_id: str, **options: Unpack[CallOptions]) -> Project:
        response = await self._client._send(_admin("GET", f"{PROJECTS}/{segment(project_id)}", options))
        return self._client._parse(response, Project)

    async def update(
        self,
        project_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        daily_budget_usd: float | None | NotGiven = NOT_GIVEN,
        monthly_budget_usd: float | None | NotGiven = NOT_GIVEN,
        rpm: int | None | NotGiven = NOT_GIVEN,
        tpm: int | None | NotGiven = NOT_GIVEN,
        **options: Unpack[CallOptions],
    ) -> Project:
        """Change the given fields only; a budget or limit set to ``None`` is removed."""
        body = given(
            name=name,
            daily_budget_usd=daily_budget_usd,
            monthly_budget_usd=monthly_budget_usd,
            rpm=rpm,
            tpm=tpm,
        )
        response = await self._client._send(
            _admin("PATCH", f"{PROJECTS}/{segment(project_id)}", options, json=body)
        )
        return self._client._parse(response, Project)


class Admin:
    """``client.admin.orgs`` and ``client.admin.projects`` (every call sends the admin key)."""

    def __init__(self, client: Client) -> None:
        self.orgs = Organizations(client)
        self.projects = Projects(client)


class AsyncAdmin:
    """``client.admin.orgs`` and ``client.admin.projects`` (every call sends the admin key)."""

    def __init__(self, client: AsyncClient) -> None:
        self.orgs = AsyncOrganizations(client)
        self.projects = AsyncProjects(client)
