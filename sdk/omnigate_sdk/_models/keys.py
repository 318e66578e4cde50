"""``/v1/keys/api``: a project's named API keys (the secret appears once, on creation)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, Field

from omnigate_sdk._models._base import OmnigateModel


class APIKey(OmnigateModel):
    """A key as listed: never its secret, only the display ``prefix``."""

    id: str
    object: str = "api_key"
    project_id: str | None = None
    name: str | None = None
    prefix: str | None = None
    allowed_models: list[str] | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class CreatedAPIKey(APIKey):
    """A new key; ``key`` is the secret, shown this once and never again."""

    key: str = Field(validation_alias=AliasChoices("key", "api_key", "secret"))
