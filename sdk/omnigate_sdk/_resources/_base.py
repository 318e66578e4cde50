"""What every resource shares: the per-call options and how a call becomes ``RequestOptions``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote

from omnigate_sdk._base_client import RequestOptions
from omnigate_sdk._types import NOT_GIVEN, Auth, Headers, NotGiven, Timeout

if TYPE_CHECKING:
    from omnigate_sdk._client import AsyncClient, Client


class CallOptions(TypedDict, total=False):
    """Per-call overrides every method takes as keyword arguments.

    ``max_retries`` given on a call applies even to a call that is not idempotent (an explicit ask).
    """

    extra_headers: Headers | None
    timeout: Timeout
    max_retries: int


def request_options(
    method: str,
    path: str,
    call: Mapping[str, Any],
    *,
    auth: Auth = "project",
    idempotent: bool = True,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    stream: bool = False,
) -> RequestOptions:
    unknown = set(call) - set(CallOptions.__annotations__)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    timeout: Timeout | NotGiven = call["timeout"] if "timeout" in call else NOT_GIVEN
    return RequestOptions(
        method=method,
        path=path,
        auth=auth,
        idempotent=idempotent,
        params=params,
        json=json,
        headers=call.get("extra_headers"),
        timeout=timeout,
        max_retries=call.get("max_retries", NOT_GIVEN),
        stream=stream,
    )


def segment(value: str) -> str:
    """A path segment (an id or provider name), percent-encoded so it cannot change the route."""
    if value in ("", ".", ".."):
        raise ValueError(f"not a valid id: {value!r}")
    return quote(value, safe="")


def given(**fields: Any) -> dict[str, Any]:
    """The fields the caller set (NOT_GIVEN dropped; None kept, meaning "clear")."""
    return {name: value for name, value in fields.items() if not isinstance(value, NotGiven)}


class SyncAPIResource:
    def __init__(self, client: Client) -> None:
        self._client = client


class AsyncAPIResource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client
