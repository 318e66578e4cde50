"""Built-in command `usage`: requests, tokens, cost and latency of the gateway, an org or a project."""

from __future__ import annotations

import argparse
from typing import Any

from omnigate import hookimpl
from omnigate.analytics.params import ORG_GROUPS, build_query
from omnigate.analytics.render import render_metrics
from omnigate.cli import CliError
from omnigate.cli.output import add_json_flag, emit, table
from omnigate.cli.tenants import open_store
from omnigate.errors import InvalidRequestError
from omnigate.plugin.registry import CommandContext, CommandRegistry
from omnigate.store import tenants
from omnigate.store.analytics import MetricsScope, usage_metrics
from omnigate.store.records import now_ms

GROUP_BY = (*ORG_GROUPS, "day")
MAX_GROUPS = 1000
COLUMNS = ("requests", "errors", "input_tokens", "output_tokens", "cost_usd", "p50_ms", "p95_ms")


def configure(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--org", metavar="ORG_ID", help="one organization (default: the whole gateway)")
    scope.add_argument("--project", metavar="PROJECT_ID", help="one project")
    parser.add_argument(
        "--since",
        default="24h",
        help="start: a duration ago (30m, 24h, 7d, 2w) or an ISO 8601 time (default 24h)",
    )
    parser.add_argument("--group-by", choices=GROUP_BY, help="one row per value, or per UTC day")
    add_json_flag(parser)


def _row(label: str, value: str | None, metrics: dict[str, Any]) -> dict[str, Any]:
    latency = metrics["latency_ms"]
    return {
        label: value,
        "requests": metrics["requests"],
        "errors": metrics["errors"],
        "input_tokens": metrics["input_tokens"],
        "output_tokens": metrics["output_tokens"],
        "cost_usd": f"{metrics['cost_usd']:.6f}",
        "p50_ms": None if latency["p50"] is None else f"{latency['p50']:.0f}",
        "p95_ms": None if latency["p95"] is None else f"{latency['p95']:.0f}",
    }


def _totals_lines(metrics: dict[str, Any]) -> list[str]:
    flat = {k: v for k, v in metrics.items() if k != "latency_ms"}
    flat.update({f"latency_{k}_ms": v for k, v in metrics["latency_ms"].items()})
    width = max(len(k) for k in flat)
    return [f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in flat.items()]


def readable(document: dict[str, Any], group_by: str | None) -> str:
    """A table of the groups (or days) with a TOTAL line; the totals as a list without grouping."""
    scope = document["scope"]
    title = "gateway" if scope["id"] is None else f"{scope['type']} {scope['id']}"
    head = f"usage of {title} from {document['from']} to {document['to']}"
    if group_by is None:
        return "\n".join([head, *_totals_lines(document["totals"])])
    label = group_by
    if group_by == "day":
        rows = [_row(label, bucket["start"][:10], bucket) for bucket in document["timeseries"]]
    else:
        rows = [_row(label, group["key"], group) for group in document["groups"]]
    rows.append(_row(label, "TOTAL", document["totals"]))
    lines = [head, table(rows, (label, *COLUMNS))]
    if document["groups_truncated"]:
        lines.append(f"(only the {MAX_GROUPS} largest groups are listed)")
    return "\n".join(lines)


async def run(args: argparse.Namespace, context: CommandContext) -> int:
    group_by = None if args.group_by in (None, "day") else args.group_by
    try:
        query = build_query(
            since=args.since,
            until=None,
            bucket="1d",
            group_by=group_by,
            allowed_groups=ORG_GROUPS,
            now_ms=now_ms(),
            names=("--since", "now", "--group-by", "--group-by"),
            series=args.group_by == "day",
        )
    except InvalidRequestError as exc:
        raise CliError(exc.message) from None
    async with open_store(context.settings) as db:
        if args.org is not None:
            if await tenants.get_org(db, args.org) is None:
                raise CliError(f"no organization {args.org!r}")
            scope = MetricsScope("org", args.org)
        elif args.project is not None:
            if await tenants.get_project(db, args.project) is None:
                raise CliError(f"no project {args.project!r}")
            scope = MetricsScope("project", args.project)
        else:
            scope = MetricsScope("global")
        metrics = await usage_metrics(
            db,
            scope,
            start_ms=query.start_ms,
            end_ms=query.end_ms,
            bucket_ms=query.bucket_ms,
            group_by=query.group_by,
            max_groups=MAX_GROUPS,
        )
    document = render_metrics(scope, query, metrics)
    emit(document if args.json else readable(document, args.group_by), args.json)
    return 0


@hookimpl
def omnigate_register_commands(registry: CommandRegistry) -> None:
    registry.add("usage", "requests, tokens, cost and latency from the usage records", configure, run)
