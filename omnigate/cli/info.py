"""Built-in commands `version`, `plugins` and `config-check`."""

from __future__ import annotations

import argparse
import platform

from omnigate import __version__, hookimpl
from omnigate.cli.output import add_json_flag, emit
from omnigate.plugin.manager import describe_plugins
from omnigate.plugin.registry import CommandContext, CommandRegistry
from omnigate.settings import Settings, SettingsError


def run_version(args: argparse.Namespace, context: CommandContext) -> int:
    emit({"version": __version__, "python": platform.python_version()}, args.json)
    return 0


def run_plugins(args: argparse.Namespace, context: CommandContext) -> int:
    plugins = describe_plugins(context.plugin_manager)
    if args.json:
        emit(plugins, True)
    else:
        emit(plugins, False, columns=("name", "distribution", "version", "hooks"))
    return 0


def run_config_check(args: argparse.Namespace, context: CommandContext) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        if args.json:
            emit({"ok": False, "problems": exc.problems}, True)
        else:
            for problem in exc.problems:
                print(problem)
        return 1
    mode = (
        "embedded (SQLite + in-process state)"
        if settings.is_embedded_db and not settings.redis_url
        else "production"
    )
    summary = {
        "ok": True,
        "mode": mode,
        "database": "sqlite" if settings.is_embedded_db else "postgresql",
        "state": "redis" if settings.redis_url else "memory",
        "admin_api": settings.admin_api_key is not None,
        "providers_with_gateway_keys": [
            name
            for name, key in (
                ("openai", settings.openai_api_key),
                ("anthropic", settings.anthropic_api_key),
                ("gemini", settings.gemini_api_key),
                ("azure", settings.azure_openai_api_key),
            )
            if key
        ],
    }
    emit(summary, args.json)
    return 0


def _json_only(parser: argparse.ArgumentParser) -> None:
    add_json_flag(parser)


@hookimpl
def omnigate_register_commands(registry: CommandRegistry) -> None:
    registry.add("version", "print the omnigate version", _json_only, run_version)
    registry.add("plugins", "list installed plugins, their versions and hooks", _json_only, run_plugins)
    registry.add(
        "config-check", "validate the configuration, one line per problem", _json_only, run_config_check
    )
