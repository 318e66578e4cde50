"""Error responses become one typed class per status family, carrying status, code, message, param, request id."""

from __future__ import annotations

import httpx
import pytest

import omnigate_sdk as og
from tests.conftest import Driver, Script, envelope, error


@pytest.mark.parametrize(
    ("status", "type_", "code", "cls"),
    [
        (400, "invalid_request_error", "invalid_request", og.BadRequestError),
        (413, "invalid_request_error", "request_too_large", og.BadRequestError),
        (401, "authentication_error", "invalid_api_key", og.AuthenticationError),
        (403, "permission_error", "model_not_allowed", og.PermissionDeniedError),
        (404, "not_found_error", "not_found", og.NotFoundError),
        (409, "invalid_request_error", "conflict", og.ConflictError),
        (429, "rate_limit_error", "rate_limit_exceeded", og.RateLimitError),
        (429, "insufficient_quota", "budget_exceeded", og.BudgetExceededError),
        (500, "api_error", "internal_error", og.InternalServerError),
        (502, "upstream_error", "upstream_unavailable", og.InternalServerError),
        (503, "service_unavailable", "service_unavailable", og.InternalServerError),
        (418, "api_error", None, og.APIStatusError),
    ],
)
async def test_each_status_maps_to_its_class(
    gw: Driver, script: Script, status: int, type_: str, code: str | None, cls: type[og.APIStatusError]
) -> None:
    body = envelope("the model said no", type_, code, param="model")
    script.queue(
        httpx.Response(status, json=body, headers={"x-request-id": "req-123", "x-should-retry": "false"})
    )
    with pytest.raises(og.APIStatusError) as caught:
        await gw(lambda c: c.models.list())
    exc = caught.value
    assert type(exc) is cls
    assert (exc.status_code, exc.code, exc.error_type, exc.param) == (status, code, type_, "model")
    assert exc.message == "the model said no" and exc.request_id == "req-123"
    assert exc.response is not None and exc.response.status_code == status
    assert "req-123" in str(exc) and str(status) in str(exc)


async def test_a_429_that_names_the_budget_is_a_budget_error_even_without_the_type(
    gw: Driver, script: Script
) -> None:
    script.queue(error(429, "rate_limit_error", "budget_exceeded", **{"x-should-retry": "false"}))
    with pytest.raises(og.BudgetExceededError):
        await gw(lambda c: c.models.list())


async def test_a_non_json_error_body_still_gives_a_typed_error(gw: Driver, script: Script) -> None:
    script.queue(httpx.Response(404, text="<html>no such page</html>", headers={"x-request-id": "r1"}))
    with pytest.raises(og.NotFoundError) as caught:
        await gw(lambda c: c.models.retrieve("gpt-x"))
    assert "HTTP 404" in caught.value.message and "no such page" in caught.value.message
    assert caught.value.code is None and caught.value.request_id == "r1"


async def test_an_empty_error_body_gives_a_generic_message(gw: Driver, script: Script) -> None:
    script.queue(httpx.Response(401))
    with pytest.raises(og.AuthenticationError) as caught:
        await gw(lambda c: c.models.list())
    assert caught.value.message == "the gateway answered HTTP 401" and caught.value.request_id is None


async def test_a_success_body_that_does_not_fit_the_model_is_a_validation_error(
    gw: Driver, script: Script
) -> None:
    script.queue(httpx.Response(200, json={"object": "list", "data": [{"no_id": True}]}))
    with pytest.raises(og.APIResponseValidationError, match="Model"):
        await gw(lambda c: c.models.list())
    script.queue(httpx.Response(200, text="not json"))
    with pytest.raises(og.APIResponseValidationError, match="not JSON"):
        await gw(lambda c: c.models.list())


async def test_connection_failures_and_timeouts_are_connection_errors(gw: Driver, script: Script) -> None:
    script.queue(httpx.ConnectError("refused"), httpx.ConnectError("refused"), httpx.ConnectError("refused"))
    with pytest.raises(og.APIConnectionError) as caught:
        await gw(lambda c: c.models.list())
    assert type(caught.value) is og.APIConnectionError and "refused" in caught.value.message
    assert caught.value.request is not None and caught.value.status_code is None
    script.queue(*(httpx.ReadTimeout("slow") for _ in range(3)))
    with pytest.raises(og.APITimeoutError):
        await gw(lambda c: c.models.list())


async def test_missing_keys_fail_before_any_request(script: Script) -> None:
    client = og.Client(
        base_url="http://gateway.test", api_key="", admin_key="", transport=httpx.MockTransport(script.handle)
    )
    with pytest.raises(og.OmnigateSDKError, match="OMNIGATE_API_KEY"):
        client.models.list()
    with pytest.raises(og.OmnigateSDKError, match="OMNIGATE_ADMIN_KEY"):
        client.admin.orgs.list()
    assert script.requests == []


def test_configuration_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(og.OmnigateSDKError, match="base_url"):
        og.Client(api_key="k", base_url="gateway.test")
    with pytest.raises(TypeError, match="max_retries"):
        og.Client(api_key="k", max_retries=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_retries"):
        og.Client(api_key="k", max_retries=-1)
    with pytest.raises(og.OmnigateSDKError, match="line breaks"):
        og.Client(api_key="k\r\nx-admin-key: stolen")
    monkeypatch.setenv("OMNIGATE_API_KEY", "og-from-env")
    monkeypatch.setenv("OMNIGATE_ADMIN_KEY", "admin-from-env")
    monkeypatch.setenv("OMNIGATE_BASE_URL", "https://gw.example.com/prefix/")
    with og.Client() as client:
        assert (client.api_key, client.admin_key) == ("og-from-env", "admin-from-env")
        assert str(client.base_url) == "https://gw.example.com/prefix"
