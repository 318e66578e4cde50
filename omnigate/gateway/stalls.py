"""Lets go of stream clients that stop reading: one watchdog per process over the relays' pending sends."""

from __future__ import annotations

import asyncio

from omnigate.gateway.disconnect import ClientStalledError
from omnigate.types import Message, Send


class StallWatch:
    """``send`` raises :class:`ClientStalledError` when one send to the client takes longer than ``timeout_s``.

    A client that stays connected but stops reading blocks the server's send once the socket's buffers
    are full, and with it the upstream stream and an in-flight slot. A send costs two dict writes here;
    one watchdog task (running only while sends are pending) wakes every quarter of the timeout and
    cancels the task of each send pending past it, which ``send`` turns into ``ClientStalledError`` and
    takes the cancel request back. A cancellation from anyone else passes through unchanged.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._pending: dict[asyncio.Task[object], float] = {}  # task -> when its send began
        self._stalled: set[asyncio.Task[object]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    async def send(self, send: Send, message: Message) -> None:
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to cancel
            await send(message)
            return
        loop = asyncio.get_running_loop()
        self._pending[task] = loop.time()
        watchdog = self._watchdog
        if watchdog is None or watchdog.done() or watchdog.get_loop() is not loop:
            self._watchdog = loop.create_task(self._watch(), name="omnigate-stall-watch")
        try:
            await send(message)
        except asyncio.CancelledError:
            if task not in self._stalled:
                raise
            self._stalled.discard(task)
            task.uncancel()
            raise ClientStalledError from None
        finally:
            del self._pending[task]

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await asyncio.sleep(self.timeout_s / 4)
                overdue = loop.time() - self.timeout_s
                for task, since in list(self._pending.items()):
                    if since <= overdue and task not in self._stalled and task.get_loop() is loop:
                        self._stalled.add(task)
                        task.cancel()
        finally:
            if self._watchdog is asyncio.current_task():
                self._watchdog = None
