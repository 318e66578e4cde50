"""How commands print: one JSON document with --json, a readable table or key/value list otherwise."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import orjson


def add_json_flag(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif isinstance(data, list):
        sys.stdout.write(table(data, columns) + "\n")
    elif isinstance(data, Mapping):
        width = max((len(str(k)) for k in data), default=0)
        for key, value in data.items():
            sys.stdout.write(f"{str(key).ljust(width)}  {_cell(value)}\n")
    else:
        sys.stdout.write(f"{data}\n")


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(none)"
    cols = list(columns or rows[0].keys())
    cells = [[_cell(row.get(col)) for col in cols] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(cols)]
    lines = ["  ".join(col.upper().ljust(w) for col, w in zip(cols, widths, strict=True))]
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells)
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "-"
    return str(value)
