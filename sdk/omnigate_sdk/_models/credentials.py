"""``/v1/credentials/{provider}``: a project's own provider key (BYOK); the secret is never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field

from omnigate_sdk._models._base import OmnigateModel


class ProviderCredential(OmnigateModel):
    """A stored provider key as shown: the provider, the secret's last four characters and ``meta``."""

    object: str = "credential"
    provider: str
    last4: str | None = Field(default=None, validation_alias=AliasChoices("last4", "last_four"))
    meta: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
