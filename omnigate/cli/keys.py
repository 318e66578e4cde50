"""Built-in command `key …`: a project's named API keys (create, list, revoke) straight against the store."""

from __future__ import annotations

import argparse
import sys

from omnigate import hookimpl
from omnigate.admin.common import check_name
from omnigate.api.keys import KEYS_REVOKED_CHANNEL, check_allowed_models, render_key
from omnigate.cli import CliError
from omnigate.cli.output import add_json_flag, emit
from omnigate.cli.tenants import open_store
from omnigate.errors import OmnigateError
from omnigate.plugin.registry import CommandContext, CommandRegistry
from omnigate.settings import Settings
from omnigate.state import StateUnavailableError, open_state
from omnigate.store import keys as key_store
from omnigate.store import tenants

KEY_COLUMNS = ("id", "name", "prefix", "allowed_models", "created_at", "last_used_at", "revoked_at")


def _models(raw: str) -> list[str]:
    return [name.strip() for name in raw.split(",")]


def configure_key(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", help="create a named key for a project (the key is shown once)")
    create.add_argument("--project", required=True, metavar="PROJECT_ID")
    create.add_argument("name")
    create.add_argument(
        "--allowed-models",
        type=_models,
        metavar="A,B",
        help="comma-separated models the key may use (default: every model)",
    )
    add_json_flag(create)
    listing = actions.add_parser("list", help="list a project's keys, revoked ones included")
    listing.add_argument("--project", required=True, metavar="PROJECT_ID")
    add_json_flag(listing)
    revoke = actions.add_parser("revoke", help="revoke a key (soft: it stays listed with revoked_at)")
    revoke.add_argument("key_id", metavar="KEY_ID")
    add_json_flag(revoke)


async def announce(settings: Settings, channel: str, message: bytes) -> None:
    """Tell running gateways through Redis; without Redis their caches expire within KEY_CACHE_TTL_S."""
    if not settings.redis_url:
        return
    try:
        async with open_state(settings.redis_url, prefix=settings.state_prefix) as state:
            await state.publish(channel, message)
    except (StateUnavailableError, OSError):
        print(
            "warning: could not notify running gateways through Redis; "
            f"they pick the change up within KEY_CACHE_TTL_S ({settings.key_cache_ttl_s:g} s)",
            file=sys.stderr,
        )


async def run_key(args: argparse.Namespace, context: CommandContext) -> int:
    settings = context.settings
    async with open_store(settings) as db:
        try:
            if args.action == "create":
                allowed = check_allowed_models(args.allowed_models)
                if await tenants.get_project(db, args.project) is None:
                    raise CliError(f"no project {args.project!r}")
                key, plaintext = await key_store.create_key(db, args.project, check_name(args.name), allowed)
                emit({**render_key(key), "key": plaintext}, args.json)
            elif args.action == "list":
                if await tenants.get_project(db, args.project) is None:
                    raise CliError(f"no project {args.project!r}")
                found = await key_store.list_keys(db, args.project)
                emit([render_key(key) for key in found], args.json, KEY_COLUMNS)
            else:
                revoked = await key_store.revoke_key_with_hash(db, args.key_id, project_id=None)
                if revoked is None:
                    raise CliError(f"no key {args.key_id!r}")
                key, key_hash = revoked
                await announce(settings, KEYS_REVOKED_CHANNEL, key_hash.encode("ascii"))
                emit(render_key(key), args.json)
        except OmnigateError as exc:
            raise CliError(exc.message) from None
    return 0


@hookimpl
def omnigate_register_commands(registry: CommandRegistry) -> None:
    registry.add("key", "manage a project's named API keys", configure_key, run_key)
