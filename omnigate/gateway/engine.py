"""The chat engine of one app run: router, providers, credentials and the composed policy pipeline."""

from __future__ import annotations

import time

import attrs

from omnigate.chat.models import ChatResult, ChatStream
from omnigate.gateway.credentials import CredentialResolver
from omnigate.gateway.pacing import start_attempt
from omnigate.gateway.pipeline import Plugins, compose
from omnigate.gateway.routing import ModelRouter
from omnigate.plugin.interfaces import Call, CallNext


@attrs.define
class Engine:
    plugins: Plugins
    router: ModelRouter
    credentials: CredentialResolver
    pipeline: CallNext = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.pipeline = compose([policy for _, policy in self.plugins.policies], self.send)

    @classmethod
    def build(cls, plugins: Plugins, credentials: CredentialResolver) -> Engine:
        return cls(plugins=plugins, router=plugins.router, credentials=credentials)

    async def send(self, call: Call) -> ChatResult | ChatStream:
        """The innermost step: one attempt at ``call.target`` with the right credential."""
        provider = self.plugins.providers[call.target.provider]
        project_id = getattr(call.principal, "project_id", None)
        credential = await self.credentials.resolve(project_id, provider)
        call.attempts += 1
        start_attempt()
        started = time.perf_counter()
        try:
            return await provider.send(call, credential)
        finally:
            call.upstream_s += time.perf_counter() - started
