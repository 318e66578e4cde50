"""Built-in commands `org …` and `project …`: tenancy management straight against the store."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from omnigate import hookimpl
from omnigate.admin.common import check_limit, check_name, usd_to_micros
from omnigate.admin.tenants import render_org, render_project
from omnigate.app import prepare_database
from omnigate.cli import CliError
from omnigate.cli.output import add_json_flag, emit
from omnigate.errors import OmnigateError
from omnigate.plugin.registry import CommandContext, CommandRegistry
from omnigate.settings import Settings
from omnigate.store import tenants
from omnigate.store.database import Database
from omnigate.store.records import UnknownOrganizationError

T = TypeVar("T")
ORG_COLUMNS = ("id", "name", "daily_budget_usd", "monthly_budget_usd", "created_at")
PROJECT_COLUMNS = ("id", "org_id", "name", "daily_budget_usd", "monthly_budget_usd", "rpm", "tpm")


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Database]:
    await prepare_database(settings)
    db = Database(settings.database_url)
    await db.connect()
    try:
        yield db
    finally:
        await db.disconnect()


def _usd(raw: str) -> float | None:
    if raw.lower() in {"none", "null", "off"}:
        return None
    try:
        return float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {raw!r}") from None


def _limit(raw: str) -> int | None:
    if raw.lower() in {"none", "null", "off"}:
        return None
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {raw!r}") from None


def _budget_args(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps absent flags out of the namespace, so "not given" differs from "none" (clear).
    parser.add_argument(
        "--daily-budget",
        type=_usd,
        metavar="USD",
        default=argparse.SUPPRESS,
        help="daily budget in USD ('none' clears)",
    )
    parser.add_argument(
        "--monthly-budget",
        type=_usd,
        metavar="USD",
        default=argparse.SUPPRESS,
        help="monthly budget in USD ('none' clears)",
    )


def _limit_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rpm", type=_limit, default=argparse.SUPPRESS, help="requests per minute ('none' clears)"
    )
    parser.add_argument(
        "--tpm", type=_limit, default=argparse.SUPPRESS, help="tokens per minute ('none' clears)"
    )


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags given on the command line, converted like the admin API converts them."""
    changes: dict[str, Any] = {}
    for flag, column in (
        ("daily_budget", "daily_budget_micros"),
        ("monthly_budget", "monthly_budget_micros"),
    ):
        if hasattr(args, flag):
            changes[column] = usd_to_micros(getattr(args, flag), flag.replace("_", "-"))
    for flag in ("rpm", "tpm"):
        if hasattr(args, flag):
            changes[flag] = check_limit(getattr(args, flag), flag)
    return changes


def configure_org(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", help="create an organization")
    create.add_argument("name")
    _budget_args(create)
    add_json_flag(create)
    add_json_flag(actions.add_parser("list", help="list organizations"))
    show = actions.add_parser("show", help="show one organization")
    show.add_argument("id")
    add_json_flag(show)
    update = actions.add_parser("update", help="change an organization's name or budgets")
    update.add_argument("id")
    update.add_argument("--name", default=argparse.SUPPRESS)
    _budget_args(update)
    add_json_flag(update)


def configure_project(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", help="create a project and print its first API key (shown once)")
    create.add_argument("--org", required=True, metavar="ORG_ID")
    create.add_argument("name")
    _budget_args(create)
    _limit_args(create)
    add_json_flag(create)
    listing = actions.add_parser("list", help="list projects")
    listing.add_argument("--org", metavar="ORG_ID")
    add_json_flag(listing)
    show = actions.add_parser("show", help="show one project")
    show.add_argument("id")
    add_json_flag(show)
    update = actions.add_parser("update", help="change a project's name, budgets or limits")
    update.add_argument("id")
    update.add_argument("--name", default=argparse.SUPPRESS)
    _budget_args(update)
    _limit_args(update)
    add_json_flag(update)
    from omnigate.cli.credentials import configure_credential  # imports this module

    configure_credential(actions.add_parser("credential", help="a project's BYOK provider keys"))


def _update_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes = _changes(args)
    if hasattr(args, "name"):
        changes["name"] = check_name(args.name)
    return changes


def _emit_one(
    record: T | None, render: Callable[[T], dict[str, Any]], what: str, args: argparse.Namespace
) -> None:
    if record is None:
        raise CliError(f"no {what} {args.id!r}")
    emit(render(record), args.json)


async def run_org(args: argparse.Namespace, context: CommandContext) -> int:
    async with open_store(context.settings) as db:
        try:
            if args.action == "create":
                org = await tenants.create_org(db, name=check_name(args.name), **_changes(args))
                emit(render_org(org), args.json)
            elif args.action == "list":
                emit([render_org(o) for o in await tenants.list_orgs(db)], args.json, ORG_COLUMNS)
            elif args.action == "show":
                _emit_one(await tenants.get_org(db, args.id), render_org, "organization", args)
            else:
                updated = await tenants.update_org(db, args.id, **_update_changes(args))
                _emit_one(updated, render_org, "organization", args)
        except OmnigateError as exc:
            raise CliError(exc.message) from None
    return 0


async def run_project(args: argparse.Namespace, context: CommandContext) -> int:
    if args.action == "credential":
        from omnigate.cli.credentials import run_credential  # imports this module

        return await run_credential(args, context.settings)
    async with open_store(context.settings) as db:
        try:
            if args.action == "create":
                changes = _changes(args)
                try:
                    project, key, plaintext = await tenants.create_project(
                        db, args.org, check_name(args.name), **changes
                    )
                except UnknownOrganizationError:
                    raise CliError(f"no organization {args.org!r}") from None
                emit({**render_project(project), "api_key": plaintext, "api_key_id": key.id}, args.json)
            elif args.action == "list":
                projects = await tenants.list_projects(db, org_id=args.org)
                emit([render_project(p) for p in projects], args.json, PROJECT_COLUMNS)
            elif args.action == "show":
                _emit_one(await tenants.get_project(db, args.id), render_project, "project", args)
            else:
                updated = await tenants.update_project(db, args.id, **_update_changes(args))
                _emit_one(updated, render_project, "project", args)
        except OmnigateError as exc:
            raise CliError(exc.message) from None
    return 0


@hookimpl
def omnigate_register_commands(registry: CommandRegistry) -> None:
    registry.add("org", "manage organizations", configure_org, run_org)
    registry.add(
        "project", "manage projects (creating one prints its first API key)", configure_project, run_project
    )
