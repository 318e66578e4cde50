"""Gateway settings: read once from the environment (and a `.env` file), validated in one pass."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from dotenv import dotenv_values

DEFAULT_DATABASE_URL = "sqlite:///./omnigate.db"
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class SettingsError(ValueError):
    """One or more settings are invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _secret() -> Any:
    return attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    admin_api_key: str | None = _secret()
    secret_key: str | None = _secret()
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    openai_api_key: str | None = _secret()
    anthropic_api_key: str | None = _secret()
    gemini_api_key: str | None = _secret()
    azure_openai_api_key: str | None = _secret()
    azure_openai_endpoint: str | None = None
    azure_openai_api_version: str = DEFAULT_AZURE_API_VERSION
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com"
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    retry_max_attempts: int = 3
    retry_base_delay_ms: int = 250
    retry_max_delay_ms: int = 8000
    circuit_breaker_failure_threshold: int = 5
    circuit_breaker_reset_timeout_s: float = 30.0
    circuit_breaker_backend: str = "memory"
    circuit_breaker_half_open_max_calls: int = 1
    response_cache_enabled: bool = False
    response_cache_ttl_s: int = 3600
    log_format: str = "text"
    log_level: str = "INFO"
    upstream_timeout_s: float = 600.0
    upstream_connect_timeout_s: float = 10.0
    request_deadline_s: float = 900.0
    max_attempts_per_request: int = 6
    max_in_flight_requests: int = 1000
    client_stall_timeout_s: float = 60.0
    budget_default_max_tokens: int = 4096
    rate_limit_fail_open: bool = False
    max_request_bytes: int = 10 * 1024 * 1024
    key_cache_ttl_s: float = 5.0
    allow_private_upstreams: bool = False
    metrics_token: str | None = _secret()
    metrics_per_project: bool = False
    model_prices_file: str | None = None
    state_prefix: str = "omnigate:"
    graceful_timeout_s: float = 30.0
    block_plugins: tuple[str, ...] = ()
    disable_plugin_autoload: bool = False
    gc_gen0_threshold: int = 10_000

    @property
    def is_embedded_db(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_embedded_db:
            return None
        return Path(self.database_url.split(":///", 1)[1])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
        """Build settings from `environ` (default `os.environ`) over a `.env` file; raise SettingsError."""
        values: dict[str, str] = {}
        if env_file and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return parse_settings(values)


def _str(raw: str) -> str:
    return raw


def _int(raw: str) -> int:
    return int(raw.strip())


def _float(raw: str) -> float:
    return float(raw.strip())


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _names(raw: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in raw.split(",") if name.strip())


# Environment variable -> (attribute, parser). The contract's names; keep them stable.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "DATABASE_URL": ("database_url", _str),
    "REDIS_URL": ("redis_url", _str),
    "ADMIN_API_KEY": ("admin_api_key", _str),
    "OMNIGATE_SECRET_KEY": ("secret_key", _str),
    "HOST": ("host", _str),
    "PORT": ("port", _int),
    "WORKERS": ("workers", _int),
    "OPENAI_API_KEY": ("openai_api_key", _str),
    "ANTHROPIC_API_KEY": ("anthropic_api_key", _str),
    "GEMINI_API_KEY": ("gemini_api_key", _str),
    "AZURE_OPENAI_API_KEY": ("azure_openai_api_key", _str),
    "AZURE_OPENAI_ENDPOINT": ("azure_openai_endpoint", _str),
    "AZURE_OPENAI_API_VERSION": ("azure_openai_api_version", _str),
    "OPENAI_BASE_URL": ("openai_base_url", _str),
    "ANTHROPIC_BASE_URL": ("anthropic_base_url", _str),
    "GEMINI_BASE_URL": ("gemini_base_url", _str),
    "RETRY_MAX_ATTEMPTS": ("retry_max_attempts", _int),
    "RETRY_BASE_DELAY_MS": ("retry_base_delay_ms", _int),
    "RETRY_MAX_DELAY_MS": ("retry_max_delay_ms", _int),
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD": ("circuit_breaker_failure_threshold", _int),
    "CIRCUIT_BREAKER_RESET_TIMEOUT_S": ("circuit_breaker_reset_timeout_s", _float),
    "CIRCUIT_BREAKER_BACKEND": ("circuit_breaker_backend", _str),
    "CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS": ("circuit_breaker_half_open_max_calls", _int),
    "RESPONSE_CACHE_ENABLED": ("response_cache_enabled", _bool),
    "RESPONSE_CACHE_TTL_S": ("response_cache_ttl_s", _int),
    "LOG_FORMAT": ("log_format", _str),
    "LOG_LEVEL": ("log_level", _str),
    "UPSTREAM_TIMEOUT_S": ("upstream_timeout_s", _float),
    "UPSTREAM_CONNECT_TIMEOUT_S": ("upstream_connect_timeout_s", _float),
    "REQUEST_DEADLINE_S": ("request_deadline_s", _float),
    "MAX_ATTEMPTS_PER_REQUEST": ("max_attempts_per_request", _int),
    "MAX_IN_FLIGHT_REQUESTS": ("max_in_flight_requests", _int),
    "CLIENT_STALL_TIMEOUT_S": ("client_stall_timeout_s", _float),
    "BUDGET_DEFAULT_MAX_TOKENS": ("budget_default_max_tokens", _int),
    "RATE_LIMIT_FAIL_OPEN": ("rate_limit_fail_open", _bool),
    "MAX_REQUEST_BYTES": ("max_request_bytes", _int),
    "KEY_CACHE_TTL_S": ("key_cache_ttl_s", _float),
    "ALLOW_PRIVATE_UPSTREAMS": ("allow_private_upstreams", _bool),
    "METRICS_TOKEN": ("metrics_token", _str),
    "METRICS_PER_PROJECT": ("metrics_per_project", _bool),
    "MODEL_PRICES_FILE": ("model_prices_file", _str),
    "OMNIGATE_STATE_PREFIX": ("state_prefix", _str),
    "GRACEFUL_TIMEOUT_S": ("graceful_timeout_s", _float),
    "OMNIGATE_BLOCK_PLUGINS": ("block_plugins", _names),
    "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": ("disable_plugin_autoload", _bool),
    "GC_GEN0_THRESHOLD": ("gc_gen0_threshold", _int),
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "log_format": ("text", "json"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "circuit_breaker_backend": ("memory", "redis"),
}
_POSITIVE = {
    "client_stall_timeout_s",
    "port",
    "workers",
    "retry_max_attempts",
    "circuit_breaker_failure_threshold",
    "max_request_bytes",
    "upstream_timeout_s",
    "upstream_connect_timeout_s",
    "response_cache_ttl_s",
    "request_deadline_s",
    "max_attempts_per_request",
    "budget_default_max_tokens",
    "circuit_breaker_half_open_max_calls",
}
_NON_NEGATIVE = {
    "max_in_flight_requests",
    "gc_gen0_threshold",
    "graceful_timeout_s",
    "retry_base_delay_ms",
    "retry_max_delay_ms",
    "circuit_breaker_reset_timeout_s",
    "key_cache_ttl_s",
}
_URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "database_url": ("sqlite:///", "postgresql://", "postgres://"),
    "redis_url": ("redis://", "rediss://", "unix://"),
    "openai_base_url": ("http://", "https://"),
    "anthropic_base_url": ("http://", "https://"),
    "gemini_base_url": ("http://", "https://"),
    "azure_openai_endpoint": ("https://", "http://"),
}


def parse_settings(values: Mapping[str, str]) -> Settings:
    """Parse raw strings into Settings, collecting every problem before raising."""
    parsed: dict[str, Any] = {}
    problems: list[str] = []
    for env_name, (attribute, parser) in ENVIRONMENT.items():
        raw = values.get(env_name)
        if raw is None or (raw == "" and parser is not _names):
            continue
        try:
            value = parser(raw)
        except ValueError as exc:
            problems.append(f"{env_name}: cannot parse {raw!r} ({exc})")
            continue
        if attribute == "log_level" and isinstance(value, str):
            value = value.upper()
        problems.extend(_check(env_name, attribute, value))
        parsed[attribute] = value
    problems.extend(_cross_check(parsed))
    if problems:
        raise SettingsError(problems)
    return Settings(**parsed)


def _cross_check(parsed: Mapping[str, Any]) -> list[str]:
    problems = []
    database_url = str(parsed.get("database_url", DEFAULT_DATABASE_URL))
    if not database_url.startswith("sqlite") and not parsed.get("secret_key"):
        problems.append(
            "OMNIGATE_SECRET_KEY: required when DATABASE_URL is not SQLite (it encrypts BYOK secrets)"
        )
    if parsed.get("circuit_breaker_backend") == "redis" and not parsed.get("redis_url"):
        problems.append("CIRCUIT_BREAKER_BACKEND: 'redis' needs REDIS_URL")
    return problems


def _check(env_name: str, attribute: str, value: Any) -> list[str]:
    if attribute in _CHOICES and value not in _CHOICES[attribute]:
        return [f"{env_name}: must be one of {', '.join(_CHOICES[attribute])}, got {value!r}"]
    if attribute in _POSITIVE and value <= 0:
        return [f"{env_name}: must be greater than 0, got {value}"]
    if attribute in _NON_NEGATIVE and value < 0:
        return [f"{env_name}: must not be negative, got {value}"]
    if attribute in _URL_SCHEMES and not str(value).startswith(_URL_SCHEMES[attribute]):
        allowed = ", ".join(_URL_SCHEMES[attribute])
        return [f"{env_name}: must start with one of {allowed}"]
    return []
