"""Immutable records the store returns, the store's lookup errors, and id/clock helpers."""

from __future__ import annotations

import time
import uuid
from typing import Any

import attrs


def new_id(prefix: str) -> str:
    """A fresh app-generated id such as `org_3f2a…` (prefix + uuid4 hex)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def now_ms() -> int:
    """The current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class UnknownOrganizationError(LookupError):
    """The organization id does not exist."""


class UnknownProjectError(LookupError):
    """The project id does not exist."""


@attrs.frozen(slots=True)
class Organization:
    id: str
    name: str
    daily_budget_micros: int | None
    monthly_budget_micros: int | None
    created_at: int
    updated_at: int


@attrs.frozen(slots=True)
class Project:
    id: str
    org_id: str
    name: str
    daily_budget_micros: int | None
    monthly_budget_micros: int | None
    rpm: int | None
    tpm: int | None
    created_at: int
    updated_at: int


@attrs.frozen(slots=True)
class ApiKey:
    """A project's API key; only its hash is stored, never the plaintext."""

    id: str
    project_id: str
    name: str
    prefix: str
    allowed_models: tuple[str, ...] | None
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


@attrs.frozen(slots=True)
class Principal:
    """What an authenticated request carries, including what admission checks (limits and budgets in
    micro-USD), so the hot path reads no database; refreshed with the key cache."""

    key_id: str
    project_id: str
    org_id: str
    allowed_models: tuple[str, ...] | None
    project_rpm: int | None
    project_tpm: int | None
    org_daily_budget_micros: int | None = None
    org_monthly_budget_micros: int | None = None
    project_daily_budget_micros: int | None = None
    project_monthly_budget_micros: int | None = None


@attrs.frozen(slots=True)
class ProviderCredential:
    """A project's BYOK provider credential, without its secret."""

    project_id: str
    provider: str
    last4: str
    meta: dict[str, Any] | None
    created_at: int
    updated_at: int
