"""Batched ``last_used_at``: requests note key ids in memory; a background task writes them every few seconds."""

from __future__ import annotations

import asyncio
import logging

from omnigate.store.database import Queryable
from omnigate.store.keys import touch_last_used
from omnigate.store.records import now_ms

logger = logging.getLogger("omnigate.keyusage")

DEFAULT_FLUSH_INTERVAL_S = 5.0


class KeyUsageRecorder:
    """``record`` is a dict write (no await, no database); ``flush`` writes one batch per interval.

    A failed flush keeps its times (the newest per key) for the next one; ``aclose`` flushes once more,
    so a graceful shutdown loses nothing. ``last_used_at`` can therefore lag by one interval.
    """

    def __init__(self, db: Queryable, interval_s: float = DEFAULT_FLUSH_INTERVAL_S) -> None:
        self._db = db
        self._interval_s = interval_s
        self._pending: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def record(self, key_id: str) -> None:
        self._pending[key_id] = now_ms()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            await touch_last_used(self._db, batch)
        except BaseException:
            for key_id, used_at in batch.items():  # keep them; a newer use wins
                if self._pending.get(key_id, 0) < used_at:
                    self._pending[key_id] = used_at
            raise

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="omnigate-key-usage")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.flush()
            except Exception as exc:
                logger.warning(
                    "could not record API key use for %d key(s); retrying in %.0fs (%s)",
                    len(self._pending),
                    self._interval_s,
                    type(exc).__name__,
                )

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # does not raise the task's CancelledError, only our own
        try:
            await self.flush()
        except Exception:
            logger.error("could not record API key use for %d key(s) at shutdown", len(self._pending))
