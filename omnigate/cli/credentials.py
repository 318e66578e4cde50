"""`project credential set|list|delete`: a project's BYOK provider keys, validated as the HTTP API validates them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from omnigate.api.credentials import (
    BYOK_PROVIDERS,
    CREDENTIALS_CHANGED_CHANNEL,
    credential_message,
    render_credential,
    validated_credential,
)
from omnigate.cli import CliError
from omnigate.cli.keys import announce
from omnigate.cli.output import add_json_flag, emit
from omnigate.cli.tenants import open_store
from omnigate.errors import OmnigateError
from omnigate.settings import Settings
from omnigate.store import credentials as credential_store
from omnigate.store import tenants
from omnigate.store.credentials import SecretBox

CREDENTIAL_COLUMNS = ("provider", "last4", "meta", "updated_at")


def _meta(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise argparse.ArgumentTypeError("--meta must be a JSON object") from None


def configure_credential(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="credential_action", metavar="ACTION")
    actions.required = True
    put = actions.add_parser("set", help="store (or replace) a project's key for a provider, encrypted")
    put.add_argument("project_id", metavar="PROJECT_ID")
    put.add_argument("--provider", required=True, choices=BYOK_PROVIDERS)
    put.add_argument("--api-key", required=True, metavar="KEY", help="the provider key ('-' reads stdin)")
    put.add_argument(
        "--meta",
        type=_meta,
        metavar="JSON",
        help='azure: {"endpoint": "https://….openai.azure.com", "deployment": …, "api_version": …}',
    )
    add_json_flag(put)
    listing = actions.add_parser("list", help="list a project's credentials (never the secrets)")
    listing.add_argument("project_id", metavar="PROJECT_ID")
    add_json_flag(listing)
    delete = actions.add_parser("delete", help="delete a project's credential for a provider")
    delete.add_argument("project_id", metavar="PROJECT_ID")
    delete.add_argument("--provider", required=True, choices=BYOK_PROVIDERS)
    add_json_flag(delete)


def _secret_box(settings: Settings) -> SecretBox:
    from omnigate.app import secret_key

    try:
        return SecretBox(secret_key(settings))
    except ValueError as exc:
        raise CliError(str(exc)) from None


async def run_credential(args: argparse.Namespace, settings: Settings) -> int:
    action = args.credential_action
    async with open_store(settings) as db:
        if await tenants.get_project(db, args.project_id) is None:
            raise CliError(f"no project {args.project_id!r}")
        try:
            if action == "set":
                raw_key = sys.stdin.readline() if args.api_key == "-" else args.api_key
                secret, meta = await validated_credential(
                    args.provider, raw_key, args.meta, allow_private=settings.allow_private_upstreams
                )
                stored = await credential_store.set_credential(
                    db, _secret_box(settings), args.project_id, args.provider, secret, meta
                )
                await announce(
                    settings, CREDENTIALS_CHANGED_CHANNEL, credential_message(args.project_id, args.provider)
                )
                emit(render_credential(stored), args.json)
            elif action == "list":
                found = await credential_store.list_credentials(db, args.project_id)
                emit([render_credential(c) for c in found], args.json, CREDENTIAL_COLUMNS)
            else:
                if not await credential_store.delete_credential(db, args.project_id, args.provider):
                    raise CliError(f"project {args.project_id!r} has no {args.provider} credential")
                await announce(
                    settings, CREDENTIALS_CHANGED_CHANNEL, credential_message(args.project_id, args.provider)
                )
                emit({"object": "credential", "provider": args.provider, "deleted": True}, args.json)
        except OmnigateError as exc:
            raise CliError(exc.message) from None
    return 0
