"""Which key an attempt uses: the project's own (BYOK, cached in process) wins over the gateway-wide one."""

from __future__ import annotations

import time
from collections.abc import Callable

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
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Credential | None]] = {}

    async def project_credential(self, project_id: str, provider: str) -> Credential | None:
        key = (project_id, provider)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        found = await get_credential_secret(self._db, self._box, project_id, provider)
        credential = Credential(api_key=found[0], meta=found[1], source="project") if found else None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = (self._clock() + self._ttl_s, credential)
        return credential

    def invalidate(self, project_id: str, provider: str | None = None) -> None:
        for key in [k for k in self._cache if k[0] == project_id and (provider is None or k[1] == provider)]:
            del self._cache[key]

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
