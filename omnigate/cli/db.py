"""Built-in command `db upgrade|downgrade|status`: yoyo migrations, safe with concurrent runners."""

from __future__ import annotations

import argparse
from pathlib import Path

from omnigate import hookimpl
from omnigate.cli.output import add_json_flag, emit
from omnigate.plugin.registry import CommandContext, CommandRegistry
from omnigate.store import migrate


def _extra_dirs(context: CommandContext) -> list[Path]:
    dirs: list[Path] = []
    for contributed in context.plugin_manager.hook.omnigate_migration_dirs():
        dirs.extend(Path(d) for d in contributed or ())
    return dirs


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION")
    actions.required = True
    add_json_flag(actions.add_parser("upgrade", help="apply every pending migration"))
    down = actions.add_parser("downgrade", help="roll back the latest migration, or down to a revision")
    down.add_argument("--to", metavar="REVISION", help="keep this revision and roll back everything after it")
    add_json_flag(down)
    add_json_flag(actions.add_parser("status", help="list migrations and whether each is applied"))


def run(args: argparse.Namespace, context: CommandContext) -> int:
    url = context.settings.database_url
    extra = _extra_dirs(context)
    if args.db_action == "upgrade":
        applied = migrate.upgrade(url, extra_dirs=extra)
        emit(
            {"applied": applied}
            if args.json
            else f"applied {len(applied)} migration(s) {' '.join(applied)}".rstrip(),
            args.json,
        )
    elif args.db_action == "downgrade":
        rolled_back = migrate.downgrade(url, to=args.to, extra_dirs=extra)
        message = f"rolled back {len(rolled_back)} migration(s) {' '.join(rolled_back)}".rstrip()
        emit({"rolled_back": rolled_back} if args.json else message, args.json)
    else:
        rows = [{"id": name, "applied": applied} for name, applied in migrate.status(url, extra_dirs=extra)]
        emit(rows, args.json, columns=("id", "applied"))
    return 0


@hookimpl
def omnigate_register_commands(registry: CommandRegistry) -> None:
    registry.add("db", "manage the database schema (yoyo migrations)", configure, run)
