"""The one cattrs converter (orjson preconf) with strict primitive hooks, and its 400-error mapping."""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import cattrs
from cattrs.cols import is_sequence, list_structure_factory
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


def _strict_list_factory(type_: Any, conv: cattrs.BaseConverter) -> Callable[[Any, Any], Any]:
    inner = list_structure_factory(type_, conv)

    def structure_list(value: Any, target: Any) -> Any:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {_json_type(value)}")
        return inner(value, target)

    return structure_list


def _build() -> OrjsonConverter:
    conv = make_converter(forbid_extra_keys=True, prefer_attrib_converters=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    # A string or an object is iterable too; without this, "abc" would become ["a", "b", "c"].
    conv.register_structure_hook_factory(is_sequence, _strict_list_factory)
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


_QUALIFIED = re.compile(r"\b(?:[a-z_][\w]*\.)+([A-Z]\w*)")
_TYPE_WORDS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "None": "null"}


def _readable_type(text: str) -> str:
    text = _QUALIFIED.sub(r"\1", text).replace("typing.", "")
    text = re.sub(r"\blist\[[^\]]*\]+", "array", text)
    text = re.sub(r"\bdict\[[^\]]*\]+", "object", text)
    return re.sub(r"\b(str|int|float|bool|None)\b", lambda m: _TYPE_WORDS[m.group(1)], text)


def _format_exception(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"extra fields found ({', '.join(sorted(exc.extra_fields))})"
    if isinstance(exc, ValueError) and " not in literal " in str(exc):
        value, _, literal = str(exc).partition(" not in literal ")
        choices = ", ".join(re.findall(r"'([^']*)'", literal))
        return f"unsupported value {value!r}; expected one of {choices}"
    if isinstance(exc, TypeError | ValueError) and str(exc) and not str(exc).startswith(("'", "unhashable")):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    if typing.get_origin(type_) is typing.Literal:
        return f"expected one of {', '.join(map(str, typing.get_args(type_)))}"
    if type_ is not None:
        return f"expected {_readable_type(repr(type_) if not isinstance(type_, type) else type_.__name__)}"
    return "invalid value"


def describe_validation_error(exc: Exception, root: str = "") -> tuple[str, str | None]:
    """A readable message and the offending field path (``messages[2].role``) of a cattrs failure."""
    if not isinstance(exc, cattrs.BaseValidationError):
        return str(exc), None
    lines = cattrs.transform_error(exc, path="$", format_exception=_format_exception)
    first = lines[0] if lines else "invalid request"
    text, _, path = first.rpartition(" @ ")
    param = path.removeprefix("$").lstrip(".") or None
    if root and param:
        param = f"{root}.{param}"
    if text.startswith("extra fields found"):
        return f"unknown field(s): {text.partition('(')[2].rstrip(')')}", param
    return (f"{param}: {text}" if param else text), param
