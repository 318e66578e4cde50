"""The hook implementations omnigate loads through the `omnigate` entry point `ollama`."""

from __future__ import annotations

from omnigate import hookimpl
from omnigate.plugin.interfaces import PluginContext
from omnigate.plugin.registry import CommandRegistry, ProviderRegistry
from omnigate.settings import Settings

from omnigate_ollama.cli import configure, run
from omnigate_ollama.config import OllamaConfig
from omnigate_ollama.provider import OllamaProvider
from omnigate_ollama.wire import PROVIDER


@hookimpl
def omnigate_register_providers(registry: ProviderRegistry, settings: Settings) -> None:
    # Read once at app build: the prefixes must be known before the router is built.
    config = OllamaConfig.from_env()

    def build_provider(context: PluginContext) -> OllamaProvider:
        return OllamaProvider(context.settings, config)

    registry.add(PROVIDER, build_provider, model_prefixes=config.model_prefixes)


@hookimpl
def omnigate_register_commands(registry: CommandRegistry) -> None:
    registry.add("ollama", "Ollama plugin commands (models: list the server's models)", configure, run)
