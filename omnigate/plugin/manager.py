"""Builds the plugin manager: built-ins from DEFAULT_PLUGINS, third parties from entry points."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

import pluggy

from omnigate.plugin import ENTRY_POINT_GROUP, PROJECT_NAME, spec
from omnigate.settings import Settings

# (name, module) of every built-in plugin; OMNIGATE_BLOCK_PLUGINS takes these names too.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("openai", "omnigate.providers.openai"),
    ("azure", "omnigate.providers.azure"),
    ("anthropic", "omnigate.providers.anthropic"),
    ("gemini", "omnigate.providers.gemini"),
    ("rate_limit", "omnigate.policies.rate_limit"),
    ("budget", "omnigate.policies.budget"),
    ("cache", "omnigate.policies.response_cache"),
    ("fallback", "omnigate.policies.fallback"),
    ("circuit_breaker", "omnigate.policies.circuit_breaker"),
    ("retry", "omnigate.policies.retry"),
    ("cli-serve", "omnigate.cli.serve"),
    ("cli-db", "omnigate.cli.db"),
    ("cli-info", "omnigate.cli.info"),
    ("cli-tenants", "omnigate.cli.tenants"),
    ("cli-keys", "omnigate.cli.keys"),
    ("cli-usage", "omnigate.cli.usage"),
)


def build_plugin_manager(
    settings: Settings, extra_plugins: Iterable[tuple[str, object]] = ()
) -> pluggy.PluginManager:
    """A fresh manager per app or CLI run: blocked names first, then entry points, then built-ins."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(spec)
    for name in settings.block_plugins:
        pm.set_blocked(name)
    if not settings.disable_plugin_autoload:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for name, module_path in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(module_path), name=name)
    for name, plugin in extra_plugins:
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(name for name, plugin in pm.list_name_plugin() if name is not None and plugin is not None)


def describe_plugins(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """Name, distribution, version and implemented hooks of every registered plugin."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    described = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:  # blocked
            continue
        dist = dists.get(id(plugin))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        described.append(
            {
                "name": name,
                "distribution": dist.project_name if dist is not None else "omnigate",
                "version": dist.version if dist is not None else _own_version(),
                "hooks": hooks,
                "builtin": dist is None,
            }
        )
    return described


def _own_version() -> str:
    from omnigate import __version__

    return __version__


async def await_me_maybe(value: object) -> None:
    """Await hook results that are awaitables; leave plain values alone."""
    if inspect.isawaitable(value):
        await value
