"""Organizations and projects: create, read, list and partial update."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, Literal

from omnigate.store.database import Queryable
from omnigate.store.keys import create_key
from omnigate.store.records import (
    ApiKey,
    Organization,
    Project,
    UnknownOrganizationError,
    new_id,
    now_ms,
)

__all__ = [
    "UNSET",
    "Unset",
    "UnknownOrganizationError",
    "create_org",
    "create_project",
    "get_org",
    "get_project",
    "list_orgs",
    "list_projects",
    "update_org",
    "update_project",
]


class _UnsetType(enum.Enum):
    UNSET = "UNSET"


Unset = Literal[_UnsetType.UNSET]
UNSET: Final = _UnsetType.UNSET
"""Marks an update argument as "not given" (None means "clear")."""


def _given(value: object) -> int:
    return 0 if value is UNSET else 1


def _value(value: object) -> Any:
    return None if value is UNSET else value


def _org(row: Mapping[str, Any]) -> Organization:
    return Organization(
        id=row["id"],
        name=row["name"],
        daily_budget_micros=row["daily_budget_micros"],
        monthly_budget_micros=row["monthly_budget_micros"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _project(row: Mapping[str, Any]) -> Project:
    return Project(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        daily_budget_micros=row["daily_budget_micros"],
        monthly_budget_micros=row["monthly_budget_micros"],
        rpm=row["rpm"],
        tpm=row["tpm"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


INSERT_ORG = """
INSERT INTO organizations (id, name, daily_budget_micros, monthly_budget_micros, created_at, updated_at)
VALUES (:id, :name, :daily, :monthly, :now, :now)
RETURNING id, name, daily_budget_micros, monthly_budget_micros, created_at, updated_at
"""


async def create_org(
    db: Queryable,
    name: str,
    daily_budget_micros: int | None = None,
    monthly_budget_micros: int | None = None,
) -> Organization:
    row = await db.fetch_one(
        INSERT_ORG,
        {
            "id": new_id("org"),
            "name": name,
            "daily": daily_budget_micros,
            "monthly": monthly_budget_micros,
            "now": now_ms(),
        },
    )
    if row is None:
        raise RuntimeError("INSERT … RETURNING returned no row")
    return _org(row)


LIST_ORGS = """
SELECT id, name, daily_budget_micros, monthly_budget_micros, created_at, updated_at
FROM organizations ORDER BY created_at, id
"""


async def list_orgs(db: Queryable) -> list[Organization]:
    return [_org(r) for r in await db.fetch_all(LIST_ORGS)]


GET_ORG = """
SELECT id, name, daily_budget_micros, monthly_budget_micros, created_at, updated_at
FROM organizations WHERE id = :id
"""


async def get_org(db: Queryable, org_id: str) -> Organization | None:
    row = await db.fetch_one(GET_ORG, {"id": org_id})
    return None if row is None else _org(row)


UPDATE_ORG = """
UPDATE organizations SET
    name = CASE WHEN :set_name = 1 THEN :name ELSE name END,
    daily_budget_micros = CASE WHEN :set_daily = 1 THEN :daily ELSE daily_budget_micros END,
    monthly_budget_micros = CASE WHEN :set_monthly = 1 THEN :monthly ELSE monthly_budget_micros END,
    updated_at = :now
WHERE id = :id
RETURNING id, name, daily_budget_micros, monthly_budget_micros, created_at, updated_at
"""


async def update_org(
    db: Queryable,
    org_id: str,
    *,
    name: str | Unset = UNSET,
    daily_budget_micros: int | None | Unset = UNSET,
    monthly_budget_micros: int | None | Unset = UNSET,
) -> Organization | None:
    """Change only the given fields (None clears a budget); None if the org does not exist."""
    row = await db.fetch_one(
        UPDATE_ORG,
        {
            "id": org_id,
            "set_name": _given(name),
            "name": _value(name),
            "set_daily": _given(daily_budget_micros),
            "daily": _value(daily_budget_micros),
            "set_monthly": _given(monthly_budget_micros),
            "monthly": _value(monthly_budget_micros),
            "now": now_ms(),
        },
    )
    return None if row is None else _org(row)


INSERT_PROJECT = """
INSERT INTO projects (id, org_id, name, daily_budget_micros, monthly_budget_micros, rpm, tpm, created_at,
                      updated_at)
SELECT :id, o.id, :name, :daily, :monthly, :rpm, :tpm, :now, :now
FROM organizations o WHERE o.id = :org_id
RETURNING id, org_id, name, daily_budget_micros, monthly_budget_micros, rpm, tpm, created_at, updated_at
"""


async def create_project(
    db: Queryable,
    org_id: str,
    name: str,
    *,
    daily_budget_micros: int | None = None,
    monthly_budget_micros: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
) -> tuple[Project, ApiKey, str]:
    """Create a project and its first key ("default") atomically; return them with the key's plaintext."""
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            INSERT_PROJECT,
            {
                "id": new_id("proj"),
                "org_id": org_id,
                "name": name,
                "daily": daily_budget_micros,
                "monthly": monthly_budget_micros,
                "rpm": rpm,
                "tpm": tpm,
                "now": now_ms(),
            },
        )
        if row is None:
            raise UnknownOrganizationError(org_id)
        project = _project(row)
        key, plaintext = await create_key(tx, project.id, "default")
    return project, key, plaintext


LIST_PROJECTS = """
SELECT id, org_id, name, daily_budget_micros, monthly_budget_micros, rpm, tpm, created_at, updated_at
FROM projects ORDER BY created_at, id
"""

LIST_ORG_PROJECTS = """
SELECT id, org_id, name, daily_budget_micros, monthly_budget_micros, rpm, tpm, created_at, updated_at
FROM projects WHERE org_id = :org_id ORDER BY created_at, id
"""


async def list_projects(db: Queryable, org_id: str | None = None) -> list[Project]:
    """All projects, or one organization's, oldest first."""
    if org_id is None:
        rows = await db.fetch_all(LIST_PROJECTS)
    else:
        rows = await db.fetch_all(LIST_ORG_PROJECTS, {"org_id": org_id})
    return [_project(r) for r in rows]


GET_PROJECT = """
SELECT id, org_id, name, daily_budget_micros, monthly_budget_micros, rpm, tpm, created_at, updated_at
FROM projects WHERE id = :id
"""


async def get_project(db: Queryable, project_id: str) -> Project | None:
    row = await db.fetch_one(GET_PROJECT, {"id": project_id})
    return None if row is None else _project(row)


UPDATE_PROJECT = """
UPDATE projects SET
    name = CASE WHEN :set_name = 1 THEN :name ELSE name END,
    daily_budget_micros = CASE WHEN :set_daily = 1 THEN :daily ELSE daily_budget_micros END,
    monthly_budget_micros = CASE WHEN :set_monthly = 1 THEN :monthly ELSE monthly_budget_micros END,
    rpm = CASE WHEN :set_rpm = 1 THEN :rpm ELSE rpm END,
    tpm = CASE WHEN :set_tpm = 1 THEN :tpm ELSE tpm END,
    updated_at = :now
WHERE id = :id
RETURNING id, org_id, name, daily_budget_micros, monthly_budget_micros, rpm, tpm, created_at, updated_at
"""


async def update_project(
    db: Queryable,
    project_id: str,
    *,
    name: str | Unset = UNSET,
    daily_budget_micros: int | None | Unset = UNSET,
    monthly_budget_micros: int | None | Unset = UNSET,
    rpm: int | None | Unset = UNSET,
    tpm: int | None | Unset = UNSET,
) -> Project | None:
    """Change only the given fields (None clears a limit); None if the project does not exist."""
    row = await db.fetch_one(
        UPDATE_PROJECT,
        {
            "id": project_id,
            "set_name": _given(name),
            "name": _value(name),
            "set_daily": _given(daily_budget_micros),
            "daily": _value(daily_budget_micros),
            "set_monthly": _given(monthly_budget_micros),
            "monthly": _value(monthly_budget_micros),
            "set_rpm": _given(rpm),
            "rpm": _value(rpm),
            "set_tpm": _given(tpm),
            "tpm": _value(tpm),
            "now": now_ms(),
        },
    )
    return None if row is None else _project(row)
