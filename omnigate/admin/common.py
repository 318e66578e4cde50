"""Helpers the admin endpoints share: body parsing, money conversion, record rendering."""

from __future__ import annotations

import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from omnigate.converter import structure
from omnigate.errors import InvalidRequestError, UnsupportedMediaTypeError
from omnigate.runtime import Runtime
from omnigate.types import JSON

T = TypeVar("T")
MICROS_PER_USD = 1_000_000
MAX_NAME_LENGTH = 200


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def read_json_object(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaTypeError(f"expected Content-Type application/json, got {content_type!r}")
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"the request body is not valid JSON: {exc.msg}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return data


async def read_payload(request: Request, cls: type[T]) -> tuple[T, dict[str, Any]]:
    """The structured payload and the raw object (to tell 'absent' from 'null' on updates)."""
    raw = await read_json_object(request)
    return structure(raw, cls), raw


def usd_to_micros(value: float | None, field: str) -> int | None:
    if value is None:
        return None
    try:
        micros = Decimal(str(value)) * MICROS_PER_USD
    except InvalidOperation:
        raise InvalidRequestError(f"{field}: not a number", param=field) from None
    if micros < 0:
        raise InvalidRequestError(f"{field}: must not be negative", param=field)
    if micros != micros.to_integral_value():
        raise InvalidRequestError(f"{field}: at most 6 decimal places (micro-USD)", param=field)
    if micros > 10**15:
        raise InvalidRequestError(f"{field}: too large", param=field)
    return int(micros)


def micros_to_usd(micros: int | None) -> float | None:
    return None if micros is None else micros / MICROS_PER_USD


def check_name(name: str, field: str = "name") -> str:
    cleaned = name.strip()
    if not cleaned:
        raise InvalidRequestError(f"{field}: must not be empty", param=field)
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidRequestError(f"{field}: at most {MAX_NAME_LENGTH} characters", param=field)
    return cleaned


MAX_LIMIT = 2**31 - 1  # the columns are INTEGER


def check_limit(value: int | None, field: str) -> int | None:
    if value is not None and not 0 < value <= MAX_LIMIT:
        raise InvalidRequestError(f"{field}: must be a positive integer up to {MAX_LIMIT}", param=field)
    return value


def iso_time(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_response(payload: JSON, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def list_response(items: list[JSON]) -> Response:
    return json_response({"object": "list", "data": items})
