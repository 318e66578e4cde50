"""`omnigate-gateway ollama models [--json]`: the models the Ollama server has pulled (GET /api/tags)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import aiohttp
import orjson
from omnigate.plugin.registry import CommandContext

from omnigate_ollama.config import OllamaConfig
from omnigate_ollama.wire import PROVIDER

COLUMNS = ("model", "parameter_size", "quantization_level", "size", "modified_at")


class ModelListError(Exception):
    """The server could not be reached or did not answer with a model list; the message says why."""


def configure(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="ollama_command", metavar="COMMAND")
    commands.required = True
    models = commands.add_parser(
        "models",
        help="list the Ollama server's models, named as the gateway routes them (ollama/<name>)",
        description="List the Ollama server's models (GET /api/tags), named as the gateway routes them.",
    )
    models.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    models.add_argument(
        "--base-url", help="the Ollama server (default OLLAMA_BASE_URL, else http://127.0.0.1:11434)"
    )
    models.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the server (default 10)"
    )


async def run(args: argparse.Namespace, context: CommandContext) -> int:
    config = OllamaConfig.from_env()
    base_url = (args.base_url or config.base_url).rstrip("/")
    try:
        models = await fetch_models(base_url, config.api_key, args.timeout)
    except ModelListError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(models, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(table(models) + "\n")
    return 0


async def fetch_models(base_url: str, api_key: str | None, timeout_s: float) -> list[dict[str, Any]]:
    headers = {"accept": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    url = base_url + "/api/tags"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False) as session,
            session.get(url, headers=headers, allow_redirects=False) as response,
        ):
            body = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ModelListError(f"cannot reach Ollama at {base_url} ({type(exc).__name__})") from None
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if status != 200:
        detail = doc.get("error") if isinstance(doc, dict) else None
        suffix = f": {detail}" if isinstance(detail, str) and detail else ""
        raise ModelListError(f"Ollama at {base_url} answered HTTP {status}{suffix}")
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise ModelListError(f"Ollama at {base_url} did not answer with a model list")
    return [
        describe(item)
        for item in doc["models"]
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


def describe(item: dict[str, Any]) -> dict[str, Any]:
    raw_details = item.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    size = item.get("size")
    return {
        "model": f"{PROVIDER}/{item['name']}",
        "name": item["name"],
        "family": details.get("family"),
        "parameter_size": details.get("parameter_size"),
        "quantization_level": details.get("quantization_level"),
        "size_bytes": size if isinstance(size, int) else None,
        "modified_at": item.get("modified_at"),
        "digest": item.get("digest"),
    }


def table(models: list[dict[str, Any]]) -> str:
    if not models:
        return "(no models: pull one with `ollama pull <model>`)"
    rows = [[_cell(model, column) for column in COLUMNS] for model in models]
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(COLUMNS, widths, strict=True))]
    lines.extend(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )
    return "\n".join(line.rstrip() for line in lines)


def _cell(model: dict[str, Any], column: str) -> str:
    if column == "size":
        size = model.get("size_bytes")
        return f"{size / 1e9:.1f} GB" if isinstance(size, int) else "-"
    value = model.get(column)
    return "-" if value is None else str(value)
