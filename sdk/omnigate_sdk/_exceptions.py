"""Every error the SDK raises, and the one place httpx errors and error responses are converted.

::

    OmnigateSDKError                  base: configuration problems and everything below
    ├── APIConnectionError            no usable response (connect/read failure, a stream cut short)
    │   └── APITimeoutError           the request timed out
    ├── APIResponseValidationError    a response that does not fit the SDK's model
    └── APIStatusError                an error status, or an error chunk inside a stream
        ├── BadRequestError           400 (and 405, 413, 415, 422: the request itself is wrong)
        ├── AuthenticationError       401
        ├── PermissionDeniedError     403
        ├── NotFoundError             404
        ├── ConflictError             409
        ├── RateLimitError            429 rate_limit_exceeded: retry after ``retry-after``
        ├── BudgetExceededError       429 budget_exceeded: retrying will not help until the budget resets
        └── InternalServerError       5xx
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "OmnigateSDKError",
    "PermissionDeniedError",
    "RateLimitError",
]


class OmnigateSDKError(Exception):
    """Base of every SDK error; the fields are None where they do not apply (no response, no body)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.param = param
        self.error_type = error_type
        self.request_id = request_id
        self.request = request
        self.response = response
        self.body = body

    def __str__(self) -> str:
        details = [
            f"{name}={value}"
            for name, value in (
                ("status", self.status_code),
                ("code", self.code),
                ("param", self.param),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(details)})" if details else self.message


class APIConnectionError(OmnigateSDKError):
    """The gateway could not be reached, or the connection failed before a whole answer arrived."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or waiting for a pooled connection)."""


class APIResponseValidationError(OmnigateSDKError):
    """The gateway answered with a body the SDK cannot read as the documented shape."""


class APIStatusError(OmnigateSDKError):
    """The gateway answered with an error: ``status_code`` always set, the rest from the error envelope."""

    status_code: int

    def __init__(self, message: str, *, status_code: int, **fields: Any) -> None:
        super().__init__(message, status_code=status_code, **fields)


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class BudgetExceededError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: BadRequestError,
    409: ConflictError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}

# An error chunk inside a stream carries the envelope's ``type`` but no status: the status it stands for.
_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "upstream_error": 502,
    "service_unavailable": 503,
    "api_error": 500,
}
_CODE_STATUS: dict[str, int] = {"upstream_timeout": 504}


def _error_class(status: int, code: str | None, error_type: str | None) -> type[APIStatusError]:
    if status == 429 and (code == "budget_exceeded" or error_type == "insufficient_quota"):
        return BudgetExceededError
    if status >= 500:
        return InternalServerError
    return _STATUS_ERRORS.get(status, APIStatusError)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def status_error_from_envelope(
    error: Any,
    *,
    status_code: int,
    request_id: str | None,
    request: httpx.Request | None = None,
    response: httpx.Response | None = None,
    body: Any = None,
) -> APIStatusError:
    """The typed error for an OpenAI-style ``error`` object (anything else gives a generic message)."""
    fields = error if isinstance(error, dict) else {}
    code = _text(fields.get("code"))
    error_type = _text(fields.get("type"))
    message = _text(fields.get("message")) or f"the gateway answered HTTP {status_code}"
    cls = _error_class(status_code, code, error_type)
    return cls(
        message,
        status_code=status_code,
        code=code,
        param=_text(fields.get("param")),
        error_type=error_type,
        request_id=request_id,
        request=request,
        response=response,
        body=body,
    )


def status_error_from_response(response: httpx.Response) -> APIStatusError:
    """The typed error for an error response whose body has been read (JSON envelope or anything else)."""
    request_id = response.headers.get("x-request-id")
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip()
        body = text or None
        error: Any = (
            {"message": f"the gateway answered HTTP {response.status_code}: {text[:200]}"} if text else None
        )
    else:
        error = body.get("error") if isinstance(body, dict) else None
    return status_error_from_envelope(
        error,
        status_code=response.status_code,
        request_id=request_id,
        request=response.request,
        response=response,
        body=body,
    )


def status_error_from_stream(
    error: Any, *, request_id: str | None, response: httpx.Response
) -> APIStatusError:
    """The typed error for an error chunk received after a stream had started (HTTP status 200)."""
    fields = error if isinstance(error, dict) else {}
    code, error_type = _text(fields.get("code")), _text(fields.get("type"))
    status = _CODE_STATUS.get(code or "") or _TYPE_STATUS.get(error_type or "", 500)
    return status_error_from_envelope(
        error,
        status_code=status,
        request_id=request_id,
        request=response.request,
        response=response,
        body={"error": error},
    )


def connection_error(exc: httpx.HTTPError, request: httpx.Request | None) -> APIConnectionError:
    """Convert an httpx transport failure (before or during a response) to the SDK's tree."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(
            f"the request to the gateway timed out ({type(exc).__name__})", request=request
        )
    detail = str(exc) or type(exc).__name__
    return APIConnectionError(f"could not talk to the gateway: {detail}", request=request)
