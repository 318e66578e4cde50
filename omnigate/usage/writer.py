"""Write-behind usage writer: a bounded in-process buffer drained in batches, at least once, by one task."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import islice

from omnigate.store.database import Queryable
from omnigate.store.usage import insert_usage, is_permanent_error
from omnigate.usage.records import UsageRecord

logger = logging.getLogger("omnigate.usage")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class UsageWriter:
    """Buffers usage records and writes them in idempotent batches from one background task.

    Records leave the buffer only after the database acknowledged them (peek, commit, then ack), so a
    failed or cancelled write keeps them for the retry, and the idempotent insert makes the retry of
    an already-committed batch harmless. Records are lost only when the buffer is full (``dropped``,
    logged as ERROR), when the database rejects a record as bad data (logged with its request id), or
    when ``aclose`` runs out of time (counted and logged).
    """

    def __init__(
        self,
        db: Queryable,
        *,
        max_buffer: int = 100_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.25,
        retry_base_s: float = 0.2,
        retry_max_s: float = 5.0,
        drop_log_interval_s: float = 10.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_buffer < 1 or batch_size < 1:
            raise ValueError("max_buffer and batch_size must be at least 1")
        if flush_interval_s <= 0 or retry_base_s <= 0 or retry_max_s < retry_base_s:
            raise ValueError("flush_interval_s and retry_base_s must be > 0, and retry_max_s >= retry_base_s")
        self._db = db
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._drop_log_interval_s = drop_log_interval_s
        self._clock = clock
        self._sleep = sleep
        self._buffer: deque[UsageRecord] = deque()
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None  # set whenever records leave the buffer
        self._flushers = 0
        self._accepted = 0  # records ever buffered
        self._settled = 0  # records that left the buffer: written, or dropped as bad data/at close
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._unreported_drops = 0
        self._last_drop_log: float | None = None
        self.written = 0
        self.dropped = 0
        self.failed_attempts = 0

    @property
    def queue_depth(self) -> int:
        """Records buffered and not yet acknowledged by the database."""
        return len(self._buffer)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Launch the background task (call once, inside the running loop, e.g. in the app's lifespan)."""
        if self._closing:
            raise RuntimeError("UsageWriter is closed")
        if self.running:
            return
        self._launch()

    def submit(self, record: UsageRecord) -> bool:
        """Buffer ``record`` for writing; never awaits. False (and counted, logged) when it was dropped."""
        if self._closing:
            self._drop(1, "the usage writer is closed")
            return False
        if len(self._buffer) >= self._max_buffer:
            self._drop(1, f"the usage buffer is full ({self._max_buffer} records)")
            return False
        self._buffer.append(record)
        self._accepted += 1
        if len(self._buffer) >= self._batch_size and self._wake is not None:
            self._wake.set()
        return True

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every record submitted before this call left the buffer (written, or dropped as bad).

        Writes a partial batch at once instead of waiting for the flush interval. Raises TimeoutError
        after ``timeout_s`` (None: no limit); the records stay buffered for the background task.
        """
        target = self._accepted
        if self._settled >= target:
            return
        if not self.running:
            self._launch()
        self._flushers += 1
        try:
            async with asyncio.timeout(timeout_s):
                while self._settled < target:
                    if not self.running and not self._closing:
                        self._launch()  # the task died (e.g. was cancelled): restart it
                    progress = self._progress
                    if progress is None or self._wake is None:  # pragma: no cover - set by _launch
                        raise RuntimeError("usage writer is not running")
                    progress.clear()
                    self._wake.set()
                    await progress.wait()
        finally:
            self._flushers -= 1

    async def aclose(self, timeout_s: float = 30.0) -> None:
        """Stop accepting records, write everything buffered (retrying within ``timeout_s``), then stop.

        Call it in the shutdown path before the database disconnects. Records still unwritten at the
        timeout are counted as dropped and logged as an ERROR.
        """
        self._closing = True
        if self._closed:
            return
        if not self.running and self._buffer:
            self._launch()  # never started, or the task died: drain now
        task = self._task
        if task is not None and not task.done():
            if self._wake is not None:
                self._wake.set()
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                await asyncio.wait([task])  # let the insert roll back; never raises
        self._closed = True
        remaining = len(self._buffer)
        if remaining:
            self._buffer.clear()
            self._settle(remaining)
            self.dropped += remaining
            logger.error(
                "usage writer closed after %.1fs with %d record(s) unwritten; they are lost (%d dropped in total)",
                timeout_s,
                remaining,
                self.dropped,
            )
        self._report_drops(force=True)

    def _launch(self) -> None:
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="omnigate-usage-writer")
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        if task.cancelled():
            logger.error(
                "usage writer task was cancelled; %d record(s) wait in the buffer", len(self._buffer)
            )
        elif (exc := task.exception()) is not None:
            logger.error(
                "usage writer task crashed; %d record(s) wait in the buffer", len(self._buffer), exc_info=exc
            )

    async def _run(self) -> None:
        failures = 0
        while True:
            flush_now = self._closing or (self._flushers > 0 and bool(self._buffer))
            if len(self._buffer) < self._batch_size and not flush_now:
                await self._wait(self._flush_interval_s)
            if not self._buffer:
                if self._closing:
                    return
                continue
            batch = list(islice(self._buffer, self._batch_size))
            try:
                await insert_usage(self._db, batch)
            except Exception as exc:
                self.failed_attempts += 1
                # Bad data somewhere in the batch: write one by one, dropping only the rejected rows.
                if is_permanent_error(exc) and await self._isolate(batch):
                    continue
                failures += 1
                delay = self._backoff(failures)
                logger.warning(
                    "usage write of %d record(s) failed (attempt %d, %s: %s); %d buffered; retrying in %.2fs",
                    len(batch),
                    failures,
                    type(exc).__name__,
                    exc,
                    len(self._buffer),
                    delay,
                )
                await self._sleep(delay)
                continue
            self._ack(len(batch))
            if failures:
                logger.info("usage writes recovered after %d failed attempt(s)", failures)
                failures = 0
            self._report_drops()

    async def _wait(self, timeout_s: float) -> None:
        wake = self._wake
        if wake is None:  # pragma: no cover - _launch sets it before the task runs
            return
        wake.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await wake.wait()
        except TimeoutError:
            pass

    async def _isolate(self, batch: Sequence[UsageRecord]) -> bool:
        """Insert ``batch`` record by record; True if all were handled, False on a transient error."""
        for record in batch:
            try:
                await insert_usage(self._db, [record])
            except Exception as exc:
                if not is_permanent_error(exc):
                    return False
                self._buffer.popleft()
                self.failed_attempts += 1
                self.dropped += 1
                self._settle(1)
                logger.error(
                    "usage record %s rejected by the database and dropped (%s: %s): %r",
                    record.request_id,
                    type(exc).__name__,
                    exc,
                    record,
                )
                continue
            self._ack(1)
        return True

    def _ack(self, count: int) -> None:
        for _ in range(count):
            self._buffer.popleft()
        self.written += count
        self._settle(count)

    def _settle(self, count: int) -> None:
        self._settled += count
        if self._progress is not None:
            self._progress.set()

    def _backoff(self, failures: int) -> float:
        """Exponential from ``retry_base_s``, capped at ``retry_max_s``, with jitter in [50%, 100%]."""
        delay = min(self._retry_max_s, self._retry_base_s * (1 << min(failures - 1, 30)))
        return delay * (0.5 + random.random() / 2)

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        self._unreported_drops += count
        self._report_drops(reason=reason)

    def _report_drops(self, *, reason: str = "buffer full or writer closed", force: bool = False) -> None:
        """Log drops as an ERROR at most once per ``drop_log_interval_s`` (always when ``force``)."""
        if not self._unreported_drops:
            return
        now = self._clock()
        if (
            not force
            and self._last_drop_log is not None
            and now - self._last_drop_log < self._drop_log_interval_s
        ):
            return
        logger.error(
            "dropped %d usage record(s) (%s); %d dropped in total",
            self._unreported_drops,
            reason,
            self.dropped,
        )
        self._unreported_drops = 0
        self._last_drop_log = now
