"""The one cattrs converter (orjson preconf) with strict primitive hooks, and its 400-error mapping."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from omnigate.errors import InvalidRequestError

T = TypeVar("T")


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_json_type(value)}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_json_type(value)}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {_json_type(value)}")
    if not math.isfinite(value):
        raise TypeError("expected a finite number")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _build() -> OrjsonConverter:
    conv = make_converter(forbid_extra_keys=True, prefer_attrib_converters=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    return conv


converter = _build()


def structure(data: Any, cls: type[T], *, root: str = "") -> T:
    """Structure ``data`` into ``cls`` or raise a 400 naming the first bad field."""
    if not isinstance(data, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, got {_json_type(data)}")
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        message, param = describe_validation_error(exc, root)
        raise InvalidRequestError(message, param=param) from None


def describe_validation_error(exc: Exception, root: str = "") -> tuple[str, str | None]:
    """A readable message and the offending field path (``messages[2].role``) of a cattrs failure."""
    if not isinstance(exc, cattrs.BaseValidationError):
        return str(exc), None
    lines = cattrs.transform_error(exc, path="$")
    first = lines[0] if lines else "invalid request"
    text, _, path = first.rpartition(" @ ")
    param = path.removeprefix("$").lstrip(".") or None
    if root and param:
        param = f"{root}.{param}"
    if text.startswith("extra fields found"):
        return f"unknown field(s): {text.partition('(')[2].rstrip(')')}", param
    if text.startswith("required field missing"):
        return f"{param}: required field missing", param
    detail = text.partition("(")[2].rstrip(")") if "(" in text else text
    return (f"{param}: {detail}" if param else detail), param
