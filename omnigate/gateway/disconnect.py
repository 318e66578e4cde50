"""Watches for the client going away during a request and cancels the request's work when it does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from omnigate.types import Receive

T = TypeVar("T")


class ClientDisconnectedError(Exception):
    """The client closed the connection before the response was complete."""

    code = "client_disconnected"


class ClientStalledError(ClientDisconnectedError):
    """The client stopped taking the response's bytes: one send did not complete in time."""

    code = "client_stalled"


class DisconnectWatch:
    """One watcher task per request that cancels the request's own task while it runs ``run(work)``.

    The work runs in the request's task (no task per phase, no ``asyncio.wait``): when the client
    disconnects during ``run``, the watcher cancels that task, and ``run`` turns the cancellation into
    ``ClientDisconnectedError`` and takes the cancel request back. A disconnect between two ``run``
    calls makes the next one raise at once. Cancellation from anyone else (the server shutting down)
    passes through unchanged.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self._armed = False
        self._cancelled = False
        self.disconnected = False

    def start(self) -> None:
        """Start watching; call it once the request body has been read (receive is ours from then on)."""
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        # hypercorn reports ASGI 2.1 for HTTP, so send() after a disconnect does not raise:
        # receive() is the only reliable signal.
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        if self._armed and self._task is not None:
            self._cancelled = True
            self._task.cancel()

    async def run(self, work: Awaitable[T]) -> T:
        """Await ``work``; if the client disconnects first, cancel it and raise ClientDisconnectedError."""
        if self.disconnected:
            if asyncio.iscoroutine(work):
                work.close()
            raise ClientDisconnectedError
        self._armed = True
        try:
            return await work
        except asyncio.CancelledError:
            if self._cancelled:
                raise ClientDisconnectedError from None
            raise
        finally:
            self._armed = False
            if self._cancelled and self._task is not None:
                self._cancelled = False
                self._task.uncancel()

    def stop(self, answered: bool = False) -> None:
        """Stop watching (not awaited: a request being torn down must still reach its finalizers).

        ``answered``: the response is complete. The server then answers the pending ``receive`` with
        ``http.disconnect`` (hypercorn and uvicorn do; ASGI asks it of a receive after the response),
        so the watcher ends by itself, unarmed; cancelling it would cost two exceptions in the
        server's receive (a cancelled queue get) on every request.
        """
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not answered:
            watcher.cancel()
