"""``/v1/admin``: organisations and projects (budgets in USD, limits per minute)."""

from __future__ import annotations

from datetime import datetime

from omnigate_sdk._models._base import OmnigateModel


class Organization(OmnigateModel):
    id: str
    object: str = "organization"
    name: str
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Project(OmnigateModel):
    id: str
    object: str = "project"
    org_id: str
    name: str
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class CreatedProject(Project):
    """A new project with its first API key; ``api_key`` is the secret, shown this once."""

    api_key: str
    api_key_id: str | None = None
