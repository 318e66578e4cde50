"""StallWatch: a send pending past the timeout raises ClientStalledError; other cancellations pass through."""

from __future__ import annotations

import asyncio

import pytest

from omnigate.gateway.disconnect import ClientStalledError
from omnigate.gateway.stalls import StallWatch
from omnigate.types import Message


async def blocked_send(message: Message) -> None:
    await asyncio.Event().wait()  # a client that never takes the bytes


async def quick_send(message: Message) -> None:
    return None


async def test_a_send_pending_past_the_timeout_raises_and_the_task_is_not_left_cancelling() -> None:
    watch = StallWatch(0.2)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ClientStalledError):
        await watch.send(blocked_send, {"type": "http.response.body"})
    assert 0.2 <= asyncio.get_running_loop().time() - started < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation left pending for the next await
    await watch.send(quick_send, {"type": "http.response.body"})


async def test_quick_sends_are_never_cancelled_and_the_watchdog_ends_when_idle() -> None:
    watch = StallWatch(0.05)
    for _ in range(50):
        await watch.send(quick_send, {"type": "http.response.body"})
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)
    assert watch._watchdog is None or watch._watchdog.done()


async def test_another_cancellation_passes_through_unchanged() -> None:
    watch = StallWatch(10.0)
    sending = asyncio.create_task(watch.send(blocked_send, {"type": "http.response.body"}))
    await asyncio.sleep(0.01)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
