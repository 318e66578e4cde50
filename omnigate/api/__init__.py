"""The tenant self-service API (project key): named API keys and BYOK provider credentials."""

from __future__ import annotations

from starlette.routing import BaseRoute

from omnigate.api import credentials, keys
from omnigate.runtime import Runtime


def routes() -> list[BaseRoute]:
    return [*keys.routes, *credentials.routes]


def subscribe_invalidations(runtime: Runtime) -> None:
    """Hear other processes' key revocations and credential changes (called once the state is open)."""
    runtime.state.subscribe(keys.KEYS_REVOKED_CHANNEL, lambda message: keys.on_key_revoked(runtime, message))
    runtime.state.subscribe(
        credentials.CREDENTIALS_CHANGED_CHANNEL,
        lambda message: credentials.on_credential_changed(runtime, message),
    )
