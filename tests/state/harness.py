"""Test harness for the state backends: fake clock, backend wrapper, a lifespan-style Redis owner task."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs
import coredis
import pytest

from omnigate.state import SharedState, StateUnavailableError, open_state

REDIS_URL = os.environ.get("OMNIGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_services() -> bool:
    return os.environ.get("OMNIGATE_TEST_REQUIRE_SERVICES") == "1"


class FakeClock:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@attrs.define
class Backend:
    """A state under test plus how to let time pass for it (fake clock, or real sleep for Redis)."""

    state: SharedState
    prefix: str
    elapse: Callable[[float], Awaitable[None]]
    short_ttl: float  # a TTL short enough to wait out in a test


def unique_prefix() -> str:
    return f"omnigate-test:{uuid.uuid4().hex[:12]}:"


async def skip_or_fail_unreachable(exc: BaseException) -> None:
    if require_services():
        pytest.fail(f"Redis at {REDIS_URL} is required but unreachable: {exc}")
    pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")


async def delete_prefix(prefix: str) -> None:
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(keys)


@contextlib.asynccontextmanager
async def lifespan_state(prefix: str) -> AsyncIterator[SharedState]:
    """Open a Redis state in its own long-lived task, as the app's lifespan does.

    pytest-asyncio runs fixture setup and teardown in different tasks, and coredis clients (anyio task
    groups) must be entered and exited in one task; request code then uses the state from other tasks.
    """
    ready: asyncio.Future[SharedState] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def owner() -> None:
        try:
            async with open_state(REDIS_URL, prefix) as state:
                await state.ping()
                ready.set_result(state)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                raise

    task = asyncio.create_task(owner())
    try:
        state = await ready
    except StateUnavailableError as exc:
        await task
        await skip_or_fail_unreachable(exc)
        raise
    try:
        yield state
    finally:
        stop.set()
        await task
