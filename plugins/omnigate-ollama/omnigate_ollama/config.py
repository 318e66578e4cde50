"""The plugin's settings: OLLAMA_* variables from the environment over a `.env` file, validated in one pass."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from dotenv import dotenv_values
from omnigate.settings import SettingsError

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
# Go's time.ParseDuration syntax, which Ollama's keep_alive accepts as a string ("5m", "1h30m", "-1s").
GO_DURATION = re.compile(r"^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

#: Every variable the plugin reads, with its meaning (documented in the README too).
VARIABLES: dict[str, str] = {
    "OLLAMA_BASE_URL": f"the Ollama server (default {DEFAULT_BASE_URL})",
    "OLLAMA_API_KEY": "sent as a Bearer token when set (an authenticating proxy in front of Ollama)",
    "OLLAMA_MODEL_PREFIXES": "comma-separated bare-model prefixes routed to Ollama (default none: only ollama/<model>)",
    "OLLAMA_KEEP_ALIVE": "how long Ollama keeps a model loaded after a request: seconds or a Go duration (5m, 1h)",
}


@attrs.frozen(kw_only=True)
class OllamaConfig:
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = attrs.field(default=None, repr=False)
    model_prefixes: tuple[str, ...] = ()
    keep_alive: str | float | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: str | None = ".env"
    ) -> OllamaConfig:
        """Read the OLLAMA_* variables the way omnigate reads its own: the environment wins over `.env`."""
        values: dict[str, str] = {}
        if env_file and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return parse_config(values)


def parse_config(values: Mapping[str, str]) -> OllamaConfig:
    """Build the config, collecting every problem before raising SettingsError (one line per problem)."""
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    base_url = values.get("OLLAMA_BASE_URL", "").strip()
    if base_url:
        if not base_url.startswith(("http://", "https://")):
            problems.append("OLLAMA_BASE_URL: must start with http:// or https://")
        parsed["base_url"] = base_url.rstrip("/")
    api_key = values.get("OLLAMA_API_KEY", "").strip()
    if api_key:
        parsed["api_key"] = api_key
    prefixes = tuple(p.strip() for p in values.get("OLLAMA_MODEL_PREFIXES", "").split(",") if p.strip())
    for prefix in prefixes:
        if "/" in prefix:
            problems.append(f"OLLAMA_MODEL_PREFIXES: {prefix!r} contains '/' (use ollama/<model> instead)")
    parsed["model_prefixes"] = prefixes
    keep_alive = values.get("OLLAMA_KEEP_ALIVE", "").strip()
    if keep_alive:
        if NUMBER.match(keep_alive):
            # A bare number is seconds; as a JSON string Ollama would reject it (no unit).
            parsed["keep_alive"] = float(keep_alive)
        elif GO_DURATION.match(keep_alive):
            parsed["keep_alive"] = keep_alive
        else:
            problems.append(f"OLLAMA_KEEP_ALIVE: {keep_alive!r} is neither seconds nor a duration such as 5m")
    if problems:
        raise SettingsError(problems)
    return OllamaConfig(**parsed)
