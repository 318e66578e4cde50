"""Fixtures running the state contract tests against each backend (memory, and Redis when reachable)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from omnigate.state import MemoryState, SharedState

from .harness import Backend, FakeClock, delete_prefix, lifespan_state, unique_prefix


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    prefix = unique_prefix()
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield Backend(MemoryState(prefix, clock=clock), prefix, advance, short_ttl=5.0)
        return
    async with lifespan_state(prefix) as state:
        try:
            yield Backend(state, prefix, asyncio.sleep, short_ttl=0.2)
        finally:
            await delete_prefix(prefix)


@pytest.fixture
def state(backend: Backend) -> SharedState:
    return backend.state
