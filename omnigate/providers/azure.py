"""The Azure OpenAI provider: OpenAI's wire format on a deployment URL with ``api-key`` and ``api-version``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from omnigate import hookimpl
from omnigate.chat.models import ChatResult, ChatStream, Credential
from omnigate.errors import InvalidRequestError, UpstreamError
from omnigate.gateway.upstream import new_session
from omnigate.netguard import GuardedResolver, UnsafeURLError, check_url, refused_by_guard
from omnigate.plugin.interfaces import Call, PluginContext
from omnigate.plugin.registry import ProviderRegistry
from omnigate.providers.openai import OpenAIProvider, not_configured
from omnigate.providers.openai_wire import request_body
from omnigate.settings import Settings


class AzureOpenAIProvider(OpenAIProvider):
    """``azure/<deployment>``: endpoint, api-version and default deployment from BYOK meta, else settings."""

    name = "azure"

    def __init__(self, settings: Settings) -> None:
        # Not OpenAIProvider.__init__: this session resolves names through the SSRF guard, which lets
        # only the operator's own endpoint reach private addresses (tenant IP literals: check_url).
        self.settings = settings
        trusted = (
            [urlsplit(settings.azure_openai_endpoint).hostname or ""]
            if settings.azure_openai_endpoint
            else []
        )
        resolver = None if settings.allow_private_upstreams else GuardedResolver(trusted_hosts=trusted)
        self.session = new_session(settings, resolver=resolver)

    def gateway_credential(self) -> Credential | None:
        key, endpoint = self.settings.azure_openai_api_key, self.settings.azure_openai_endpoint
        if not key or not endpoint:
            return None
        meta = {"endpoint": endpoint, "api_version": self.settings.azure_openai_api_version}
        return Credential(api_key=key, meta=meta, source="gateway")

    def endpoint(self, call: Call, credential: Credential) -> tuple[str, dict[str, str]]:
        meta = credential.meta or {}
        endpoint = _meta_text(meta, "endpoint")
        if endpoint is not None and credential.source == "project":
            try:
                check_url(endpoint, allow_private=self.settings.allow_private_upstreams)
            except UnsafeURLError as exc:
                raise _bad_endpoint(str(exc)) from None
        endpoint = endpoint or self.settings.azure_openai_endpoint
        if not endpoint:
            raise not_configured(
                self.name,
                "no Azure OpenAI endpoint (set AZURE_OPENAI_ENDPOINT or the credential's meta.endpoint)",
            )
        deployment = call.target.model or _meta_text(meta, "deployment")
        if not deployment:
            raise not_configured(self.name, "no deployment (use model azure/<deployment>)")
        version = _meta_text(meta, "api_version") or self.settings.azure_openai_api_version
        url = (
            f"{endpoint.rstrip('/')}/openai/deployments/{quote(deployment, safe='')}/chat/completions"
            f"?{urlencode({'api-version': version})}"
        )
        return url, {"api-key": credential.api_key}

    def body(self, call: Call) -> dict[str, Any]:
        # The deployment in the URL chooses the model.
        return request_body(call.request, None)

    async def send(self, call: Call, credential: Credential | None) -> ChatResult | ChatStream:
        try:
            return await super().send(call, credential)
        except UpstreamError as exc:
            refusal = refused_by_guard(exc)
            if refusal is None:
                raise
            raise _bad_endpoint(str(refusal)) from None


def _meta_text(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _bad_endpoint(problem: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"the project's azure credential meta.endpoint {problem}",
        code="provider_not_configured",
        param="model",
    )


@hookimpl
def omnigate_register_providers(registry: ProviderRegistry, settings: Settings) -> None:
    # No bare prefixes: clients say azure/<deployment>.
    registry.add("azure", _factory)


def _factory(context: PluginContext) -> AzureOpenAIProvider:
    return AzureOpenAIProvider(context.settings)
