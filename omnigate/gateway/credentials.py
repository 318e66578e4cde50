"""Which key an attempt uses: the project's own (BYOK, cached in process) wins over the gateway-wide one."""

from __future__ import annotations

import time
from collections.abc import Callable

from omnigate.cache import LoadingCache
from omnigate.chat.models import Credential
from omnigate.errors import InvalidRequestError
from omnigate.plugin.interfaces import Provider
from omnigate.store.credentials import SecretBox, get_credential_secret
from omnigate.store.database import Database


class CredentialResolver:
    """Caches BYOK lookups per (project, provider) for ``ttl_s`` (misses too); no DB round trip per request."""

    def __init__(
        self, db: Database, box: SecretBox, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._box = box
        self._cache: LoadingCache[tuple[str, str], Credential] = LoadingCache(
            self._load, ttl_s=ttl_s, max_entries=100_000, clock=clock
        )

    async def _load(self, key: tuple[str, str]) -> Credential | None:
        found = await get_credential_secret(self._db, self._box, *key)
        return Credential(api_key=found[0], meta=found[1], source="project") if found else None

    async def project_credential(self, project_id: str, provider: str) -> Credential | None:
        return await self._cache.get((project_id, provider))

    def invalidate(self, project_id: str, provider: str | None = None) -> None:
        self._cache.invalidate_matching(lambda key: key[0] == project_id and provider in (None, key[1]))

    def close(self) -> None:
        """Stop background reloads (at shutdown, before the store goes away)."""
        self._cache.close()

    async def resolve(self, project_id: str | None, provider: Provider) -> Credential | None:
        """The project's credential, else the gateway's; a 400 naming the provider when neither exists."""
        if project_id is not None:
            own = await self.project_credential(project_id, provider.name)
            if own is not None:
                return own
        gateway = provider.gateway_credential()
        if gateway is None and provider.requires_credential:
            raise InvalidRequestError(
                f"no credential for provider {provider.name!r}: set one for this project "
                f"(PUT /v1/credentials/{provider.name}) or configure the gateway-wide key",
                code="provider_not_configured",
            )
        return gateway
