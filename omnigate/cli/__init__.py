"""The ``omnigate-gateway`` CLI: every command, built-in or not, comes from a plugin registration."""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import sys
from collections.abc import Sequence

from omnigate import __version__
from omnigate.plugin.manager import build_plugin_manager
from omnigate.plugin.registry import CommandContext, CommandRegistry
from omnigate.settings import Settings, SettingsError


class CliError(Exception):
    """A command failed in a way the user can fix; printed as one line, exit code 1."""


def build_parser(registry: CommandRegistry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnigate-gateway", description="omnigate LLM gateway")
    parser.add_argument("--version", action="version", version=f"omnigate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for spec in registry.specs():
        sub = commands.add_parser(spec.name, help=spec.help, description=spec.help)
        spec.configure(sub)
        sub.set_defaults(_run=spec.run)
    return parser


def _bootstrap_settings() -> Settings:
    """Settings for plugin discovery only; an invalid environment must not hide `config-check`."""
    try:
        return Settings.from_env()
    except SettingsError:
        return Settings()


def main(argv: Sequence[str] | None = None) -> int:
    pm = build_plugin_manager(_bootstrap_settings())
    registry = CommandRegistry()
    pm.hook.omnigate_register_commands(registry=registry)
    args = build_parser(registry).parse_args(argv)
    context = CommandContext(plugin_manager=pm, settings_loader=functools.cache(Settings.from_env))
    try:
        result = args._run(args, context)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


async def _await(awaitable: object) -> object:
    return await awaitable  # type: ignore[misc]
