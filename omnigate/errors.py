"""The one error tree and its renderer to OpenAI's error envelope.

::

    OmnigateError                      500 api_error
    ├── InvalidRequestError            400 invalid_request_error
    │   └── ModelNotFoundError         400 invalid_request_error / model_not_found
    ├── AuthenticationError            401 authentication_error / invalid_api_key
    ├── PermissionDeniedError          403 permission_error
    ├── NotFoundError                  404 not_found_error
    ├── MethodNotAllowedError          405 invalid_request_error / method_not_allowed
    ├── PayloadTooLargeError           413 invalid_request_error / request_too_large
    ├── UnsupportedMediaTypeError      415 invalid_request_error / unsupported_media_type
    ├── RateLimitError                 429 rate_limit_error / rate_limit_exceeded
    ├── BudgetExceededError            429 insufficient_quota / budget_exceeded
    ├── ServiceUnavailableError        503 service_unavailable
    └── UpstreamError                  502 upstream_error (status, retryable, retry_after)
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson


class OmnigateError(Exception):
    """Base of every error omnigate renders to a client."""

    status_code: int = 500
    error_type: str = "api_error"
    default_code: str | None = "internal_error"
    default_headers: Mapping[str, str] = {}

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers: dict[str, str] = {**self.default_headers, **(headers or {})}

    def envelope(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "code": self.code,
                "param": self.param,
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.envelope())


class InvalidRequestError(OmnigateError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class ModelNotFoundError(InvalidRequestError):
    default_code = "model_not_found"


class AuthenticationError(OmnigateError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(OmnigateError):
    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFoundError(OmnigateError):
    status_code = 404
    error_type = "not_found_error"
    default_code = "not_found"


class MethodNotAllowedError(OmnigateError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLargeError(OmnigateError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UnsupportedMediaTypeError(OmnigateError):
    status_code = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


class RateLimitError(OmnigateError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExceededError(OmnigateError):
    status_code = 429
    error_type = "insufficient_quota"
    default_code = "budget_exceeded"
    default_headers = {"x-should-retry": "false"}


class ServiceUnavailableError(OmnigateError):
    status_code = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"


class UpstreamError(OmnigateError):
    """An upstream provider failed; carries what retry and fallback policies need."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
        provider: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param, headers=headers)
        self.upstream_status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.provider = provider


STATUS_ERRORS: dict[int, type[OmnigateError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_for_status(status: int, message: str) -> OmnigateError:
    """The tree's error for a bare HTTP status (router 404/405 and the like)."""
    cls = STATUS_ERRORS.get(status)
    if cls is None:
        error = OmnigateError(message)
        error.status_code = status
        return error
    return cls(message)
