"""Composes policy plugins into one async callable, once, at start-up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence

import attrs

from omnigate.gateway.routing import ModelRouter
from omnigate.plugin.interfaces import Call, CallNext, PluginContext, Policy, Provider
from omnigate.plugin.registry import PolicyRegistry, ProviderRegistry

logger = logging.getLogger("omnigate.pipeline")


def compose(policies: Sequence[Policy], terminal: CallNext) -> CallNext:
    """``policies[0]`` is outermost; each gets the next step as ``call_next``."""
    handler = terminal
    for policy in reversed(policies):
        handler = _bind(policy, handler)
    return handler


def _bind(policy: Policy, call_next: CallNext) -> CallNext:
    # A plain function handing back the policy's coroutine: one coroutine frame per policy, not two.
    def step(call: Call) -> Awaitable[object]:
        return policy(call, call_next)

    return step


@attrs.frozen
class Plugins:
    """Providers and policies instantiated from their registries for one app run."""

    providers: dict[str, Provider]
    model_prefixes: tuple[tuple[str, str], ...]
    policies: tuple[tuple[str, Policy], ...]
    router: ModelRouter


def instantiate(providers: ProviderRegistry, policies: PolicyRegistry, context: PluginContext) -> Plugins:
    """Call every factory once (providers, then policies, which can route model names); a policy
    factory returning None is disabled by its settings."""
    built_providers = {spec.name: spec.factory(context) for spec in providers.specs()}
    prefixes = tuple((prefix, spec.name) for spec in providers.specs() for prefix in spec.model_prefixes)
    router = ModelRouter(built_providers, prefixes)
    policy_context = attrs.evolve(context, resolve_model=router.resolve)
    built_policies: list[tuple[str, Policy]] = []
    for spec in policies.ordered():
        policy = spec.factory(policy_context)
        if policy is None:
            logger.info("policy %s is disabled by its settings", spec.name)
            continue
        built_policies.append((spec.name, policy))
    return Plugins(built_providers, prefixes, tuple(built_policies), router)
