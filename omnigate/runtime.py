"""The services one app instance runs on, opened in the lifespan and shared by middleware and endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from omnigate.cache import LoadingCache
from omnigate.gateway.credentials import CredentialResolver
from omnigate.gateway.engine import Engine
from omnigate.gateway.pipeline import Plugins
from omnigate.gateway.stalls import StallWatch
from omnigate.observe import Observer
from omnigate.plugin.registry import PolicyRegistry, ProviderRegistry
from omnigate.settings import Settings
from omnigate.state.base import SharedState
from omnigate.store.credentials import SecretBox
from omnigate.store.database import Database
from omnigate.store.keys import hash_key, principal_for_hash
from omnigate.store.records import Principal

if TYPE_CHECKING:
    from omnigate.keyusage import KeyUsageRecorder
    from omnigate.metrics import GatewayMetrics
    from omnigate.pricing import PriceBook
    from omnigate.usage.writer import UsageWriter

KEY_PREFIX = "og-"
MAX_KEY_LENGTH = 256


class NotStartedError(RuntimeError):
    """A service was used before the app's lifespan opened it."""


@attrs.define
class Runtime:
    """Filled in by the lifespan; the middleware stack holds it from build time."""

    settings: Settings
    plugin_manager: pluggy.PluginManager
    observers: tuple[Observer, ...] = ()
    provider_registry: ProviderRegistry = attrs.Factory(ProviderRegistry)
    policy_registry: PolicyRegistry = attrs.Factory(PolicyRegistry)
    plugins: Plugins | None = None
    _engine: Engine | None = None
    _prices: PriceBook | None = None
    _usage_writer: UsageWriter | None = None
    _db: Database | None = None
    _state: SharedState | None = None
    key_cache: LoadingCache[str, Principal] | None = None
    secret_box: SecretBox | None = None
    key_usage: KeyUsageRecorder | None = None
    metrics: GatewayMetrics | None = None
    extras: dict[str, Any] = attrs.Factory(dict)
    in_flight: int = 0
    """Chat requests this process is serving now (streams until their end), for load shedding."""
    stall_watch: StallWatch = attrs.field(
        default=attrs.Factory(lambda self: StallWatch(self.settings.client_stall_timeout_s), takes_self=True)
    )

    @property
    def db(self) -> Database:
        if self._db is None:
            raise NotStartedError("the database is not open: the app's lifespan has not started")
        return self._db

    @property
    def state(self) -> SharedState:
        if self._state is None:
            raise NotStartedError("the shared state is not open: the app's lifespan has not started")
        return self._state

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise NotStartedError("the chat engine is not built: the app's lifespan has not started")
        return self._engine

    @property
    def prices(self) -> PriceBook:
        if self._prices is None:
            raise NotStartedError("prices are not loaded: the app's lifespan has not started")
        return self._prices

    @property
    def usage_writer(self) -> UsageWriter:
        if self._usage_writer is None:
            raise NotStartedError("the usage writer is not running: the app's lifespan has not started")
        return self._usage_writer

    def start_chat(self, plugins: Plugins, prices: PriceBook, writer: UsageWriter) -> None:
        """Wire the chat path once the database, state and plugins are up."""
        assert self.secret_box is not None
        credentials = CredentialResolver(self.db, self.secret_box, ttl_s=self.settings.key_cache_ttl_s)
        self.plugins = plugins
        self._engine = Engine.build(plugins, credentials)
        self._prices = prices
        self._usage_writer = writer

    def open(self, db: Database, state: SharedState, secret_box: SecretBox) -> None:
        self._db = db
        self._state = state
        self.secret_box = secret_box
        self.key_cache = LoadingCache(self._load_principal, ttl_s=self.settings.key_cache_ttl_s)

    def close(self) -> None:
        if self.key_cache is not None:
            self.key_cache.close()
        if self._engine is not None:
            self._engine.credentials.close()
        self._db = None
        self._state = None
        self.key_cache = None
        self.secret_box = None
        self.plugins = None
        self._engine = None
        self._usage_writer = None
        self.key_usage = None

    async def _load_principal(self, key_hash: str) -> Principal | None:
        return await principal_for_hash(self.db, key_hash)

    def record_key_use(self, principal: Principal) -> None:
        """Note that a key was used (batched into ``last_used_at``; no await, no database)."""
        if self.key_usage is not None:
            self.key_usage.record(principal.key_id)

    async def resolve_key(self, plaintext: str) -> Principal | None:
        """Principal for a presented key, from the in-process cache; None when unknown or revoked."""
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > MAX_KEY_LENGTH:
            return None
        if self.key_cache is None:
            raise NotStartedError("the key cache is not open: the app's lifespan has not started")
        return await self.key_cache.get(hash_key(plaintext))
