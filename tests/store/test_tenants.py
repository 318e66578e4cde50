"""Organizations and projects on both backends."""

from __future__ import annotations

import pytest

from omnigate.store.database import Database
from omnigate.store.keys import hash_key, list_keys, principal_for_hash
from omnigate.store.records import UnknownOrganizationError
from omnigate.store.tenants import (
    UNSET,
    create_org,
    create_project,
    get_org,
    get_project,
    list_orgs,
    list_projects,
    update_org,
    update_project,
)

NASTY = "x'); DROP TABLE organizations; --"
COUNT_PROJECTS = "SELECT COUNT(*) FROM projects"


async def test_org_crud(db: Database) -> None:
    org = await create_org(db, "acme", daily_budget_micros=1_000_000, monthly_budget_micros=20_000_000)
    assert org.id.startswith("org_")
    assert (org.name, org.daily_budget_micros, org.monthly_budget_micros) == ("acme", 1_000_000, 20_000_000)
    assert org.created_at == org.updated_at > 1_600_000_000_000
    assert await get_org(db, org.id) == org
    assert await get_org(db, "org_missing") is None
    other = await create_org(db, "beta")
    assert (other.daily_budget_micros, other.monthly_budget_micros) == (None, None)
    assert {o.id for o in await list_orgs(db)} == {org.id, other.id}


async def test_update_org_distinguishes_unset_from_none(db: Database) -> None:
    org = await create_org(db, "acme", daily_budget_micros=5, monthly_budget_micros=50)
    renamed = await update_org(db, org.id, name="acme2")
    assert renamed is not None
    assert (renamed.name, renamed.daily_budget_micros, renamed.monthly_budget_micros) == ("acme2", 5, 50)
    cleared = await update_org(db, org.id, daily_budget_micros=None)
    assert cleared is not None and cleared.daily_budget_micros is None and cleared.monthly_budget_micros == 50
    big = await update_org(db, org.id, monthly_budget_micros=2**53, name=UNSET)
    assert big is not None and big.monthly_budget_micros == 2**53 and big.name == "acme2"
    assert big.created_at == org.created_at and big.updated_at >= org.updated_at
    assert await update_org(db, "org_missing", name="x") is None


async def test_name_is_not_null(db: Database) -> None:
    org = await create_org(db, "acme")
    with pytest.raises(Exception):  # noqa: B017 - the driver's own not-null violation
        await update_org(db, org.id, name=None)  # type: ignore[arg-type]
    assert (await get_org(db, org.id)) == org


async def test_create_project_with_default_key(db: Database) -> None:
    org = await create_org(db, "acme")
    project, key, plaintext = await create_project(
        db, org.id, "web", daily_budget_micros=1, monthly_budget_micros=2, rpm=60, tpm=10_000
    )
    assert project.id.startswith("proj_") and project.org_id == org.id
    assert (project.name, project.daily_budget_micros, project.monthly_budget_micros) == ("web", 1, 2)
    assert (project.rpm, project.tpm) == (60, 10_000)
    assert (key.project_id, key.name, key.revoked_at) == (project.id, "default", None)
    assert plaintext.startswith(key.prefix)
    assert await get_project(db, project.id) == project
    assert await list_keys(db, project.id) == [key]
    principal = await principal_for_hash(db, hash_key(plaintext))
    assert principal is not None
    assert (principal.org_id, principal.project_rpm, principal.project_tpm) == (org.id, 60, 10_000)


async def test_create_project_for_unknown_org_creates_nothing(db: Database) -> None:
    with pytest.raises(UnknownOrganizationError):
        await create_project(db, "org_missing", "web")
    assert isinstance(UnknownOrganizationError("x"), LookupError)
    assert await db.fetch_val(COUNT_PROJECTS) == 0


async def test_list_and_update_projects(db: Database) -> None:
    a = await create_org(db, "a")
    b = await create_org(db, "b")
    pa, _, _ = await create_project(db, a.id, "pa", rpm=5)
    pb, _, _ = await create_project(db, b.id, "pb")
    assert [p.id for p in await list_projects(db, a.id)] == [pa.id]
    assert {p.id for p in await list_projects(db)} == {pa.id, pb.id}
    assert await list_projects(db, "org_missing") == []

    updated = await update_project(db, pa.id, tpm=100, daily_budget_micros=7)
    assert updated is not None
    assert (updated.name, updated.rpm, updated.tpm, updated.daily_budget_micros) == ("pa", 5, 100, 7)
    updated = await update_project(db, pa.id, rpm=None, name="renamed", monthly_budget_micros=9)
    assert updated is not None
    assert (updated.name, updated.rpm, updated.tpm, updated.monthly_budget_micros) == (
        "renamed",
        None,
        100,
        9,
    )
    assert await update_project(db, "proj_missing", rpm=1) is None


async def test_deleting_an_org_cascades(db: Database) -> None:
    org = await create_org(db, "acme")
    project, _, plaintext = await create_project(db, org.id, "web")
    await db.execute("DELETE FROM organizations WHERE id = :id", {"id": org.id})
    assert await get_project(db, project.id) is None
    assert await principal_for_hash(db, hash_key(plaintext)) is None


async def test_injection_like_strings_are_literal(db: Database) -> None:
    org = await create_org(db, NASTY)
    assert (await get_org(db, org.id)) == org and org.name == NASTY
    project, _, _ = await create_project(db, org.id, NASTY + "%_\\")
    assert project.name == NASTY + "%_\\"
    assert await get_org(db, NASTY) is None
    assert await get_project(db, "' OR '1'='1") is None
    assert await list_projects(db, "' OR '1'='1") == []
    assert len(await list_orgs(db)) == 1
