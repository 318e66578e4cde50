"""Redis SharedState on coredis: counter operations batched into one Lua script call, pub/sub on its own client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, cast

import anyio
import coredis
from coredis.commands.script import Script
from coredis.connection import BaseConnection
from coredis.exceptions import AuthenticationError, NoScriptError, ReadOnlyError
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.patterns.pubsub import PubSub
from coredis.retry import ConstantRetryPolicy

from omnigate.state.base import (
    DEFAULT_PREFIX,
    Counter,
    Reservation,
    StateUnavailableError,
    check_counters,
    ttl_to_ms,
)
from omnigate.state.redis_batch import BATCH_LUA, NOT_INTEGER, CounterBatcher, report_failure

EVALSHA = b"EVALSHA"
logger = logging.getLogger(__name__)

_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,  # includes BusyLoadingError
    TimeoutError,  # stream_timeout / pool_timeout
    ReadOnlyError,  # failover in progress
    AuthenticationError,
)


@contextlib.contextmanager
def _boundary() -> Iterator[None]:
    """Convert an unreachable backend to StateUnavailableError (a counter on a non-integer value is a
    ValueError from the counters script's reply, see redis_batch)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StateUnavailableError(f"redis unavailable: {exc}") from exc
    except BaseExceptionGroup as group:
        unavailable, rest = group.split(_UNAVAILABLE)
        if unavailable is not None and rest is None:
            raise StateUnavailableError(f"redis unavailable: {unavailable.exceptions[0]}") from group
        raise


def _to_int(raw: Any, key: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"value at {key!r} is {NOT_INTEGER}") from None


class RedisState:
    """SharedState on Redis; use as an async context manager (entered once, e.g. in the app lifespan)."""

    name: str = "redis"

    def __init__(
        self,
        redis_url: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        stream_timeout: float = 2.0,
        connect_timeout: float = 1.0,
    ) -> None:
        self.prefix = prefix
        self._prefix_bytes = prefix.encode()
        # Retry only failures to connect/send: a timed-out script may have run, and retrying it would
        # count twice. One quick retry covers a stale pooled connection after a Redis restart.
        options: dict[str, Any] = {
            "decode_responses": False,
            "stream_timeout": stream_timeout,
            "connect_timeout": connect_timeout,
            "pool_timeout": stream_timeout,
            "retry_policy": ConstantRetryPolicy((RedisConnectionError,), retries=1, delay=0.05),
        }
        self._client: coredis.Redis[bytes] = coredis.Redis.from_url(redis_url, **options)
        # Pub/sub holds a dedicated connection; keep it off the command client's pool.
        self._sub_client: coredis.Redis[bytes] = coredis.Redis.from_url(redis_url, **options)
        self._counters_script: Script[bytes] = self._client.register_script(BATCH_LUA)
        self._counters = CounterBatcher(self._run_counters_script)
        self._script_connection: BaseConnection | None = None
        self._callbacks: dict[bytes, list[Callable[[bytes], None]]] = {}
        self._wake = asyncio.Event()
        self._stack: contextlib.AsyncExitStack | None = None
        self._listener: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("RedisState is already open")
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self._client)
            await stack.enter_async_context(self._sub_client)
            self._listener = asyncio.create_task(self._listen(), name="omnigate-state-pubsub")
            stack.push_async_callback(self._stop_listener)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        stack, self._stack = self._stack, None
        if stack is None:
            return False
        await self._counters.wait_idle()
        try:
            return bool(await stack.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:
            # coredis pools are anyio task groups: an error raised in the body comes back wrapped.
            if exc is not None and group.split(lambda leaf: leaf is exc)[1] is None:
                return False
            raise

    async def _stop_listener(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            # asyncio.wait does not raise the child's CancelledError, but does propagate our own.
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                logger.error("state pub/sub listener crashed", exc_info=task.exception())

    async def _listen(self) -> None:
        """Keep one pub/sub connection subscribed to every channel with a callback, forever."""
        delay = 0.1
        while True:
            try:
                async with self._sub_client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._keep_subscribed, pubsub)
                        while True:
                            message = await pubsub.get_message()
                            if message is not None and message["type"] == "message":
                                delay = 0.1
                                self._dispatch(cast(bytes, message["channel"]), cast(bytes, message["data"]))
            except Exception:
                logger.warning("state pub/sub listener failed; reconnecting in %.1fs", delay, exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _keep_subscribed(self, pubsub: PubSub[bytes]) -> None:
        """Subscribe to channels registered before or after open(), whenever subscribe() wakes us."""
        while True:
            self._wake.clear()
            missing = [channel for channel in self._callbacks if channel not in pubsub.channels]
            if missing:
                await pubsub.subscribe(*missing)
            await self._wake.wait()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        for callback in list(self._callbacks.get(channel, ())):
            try:
                callback(data)
            except Exception:
                logger.exception("state subscriber callback failed on channel %r", channel)

    # -- key/value -------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        with _boundary():
            return await self._client.get(self.prefix + key)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        ttl_ms = ttl_to_ms(ttl_s)
        with _boundary():
            await self._client.set(self.prefix + key, value, px=ttl_ms)

    async def delete(self, key: str) -> None:
        with _boundary():
            await self._client.delete([self.prefix + key])

    # -- counters --------------------------------------------------------------------------------

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        return (await self.add([Counter(key, amount, None, ttl_s)]))[0]

    async def reserve(self, items: Sequence[Counter]) -> Reservation:
        reply = await self._run(True, items)
        n = len(items)
        refused = int(reply[1])
        unguarded = reply[2 + 2 * n]
        return Reservation(
            admitted=reply[0] == b"1",
            refused=None if refused < 0 else refused,
            values=tuple(map(int, reply[2 : 2 + n])),
            ttls_ms=tuple(map(int, reply[2 + n : 2 + 2 * n])),
            unguarded=() if unguarded == b"-" else tuple(map(int, unguarded.split(b" "))),
        )

    async def add(self, items: Sequence[Counter]) -> tuple[int, ...]:
        reply = await self._run(False, items)
        return tuple(map(int, reply[2 : 2 + len(items)]))

    def add_later(self, items: Sequence[Counter], on_error: Callable[[Exception], None]) -> None:
        try:
            ttls_ms = check_counters(items)
        except (TypeError, ValueError) as error:
            on_error(error)
            return
        if items:
            future = self._counters.enqueue(self.prefix, False, items, ttls_ms, urgent=False)
            future.add_done_callback(functools.partial(report_failure, on_error))

    async def _run(self, check: bool, items: Sequence[Counter]) -> list[bytes]:
        ttls_ms = check_counters(items)
        if not items:
            return [b"1", b"-1", b"-"]
        return await self._counters.submit(self.prefix, check, items, ttls_ms)

    async def _run_counters_script(self, keys: list[str], args: list[str]) -> bytes:
        with _boundary():
            try:
                return await self._evalsha(keys, args)
            except NoScriptError:  # Redis restarted or its scripts were flushed: nothing ran
                await self._client.script_load(BATCH_LUA)
                return await self._evalsha(keys, args)

    async def _evalsha(self, keys: list[str], args: list[str]) -> bytes:
        """The counters script on a pooled connection held between calls.

        The client's command path costs twice the CPU per call (pool checkout, retry policy, command
        objects): ~300 µs a request at one connection. The batcher has one call in flight at a time,
        and the pool's connections multiplex anyway (the client, too, releases one as soon as its
        command is queued). A connection found dead is replaced before anything is queued on it; one
        that dies with the call in flight fails the call (it may have run: never retried).
        """
        connection = self._script_connection
        if connection is None or not connection.usable:
            pool = self._client.connection_pool
            connection = self._script_connection = await pool.get_connection()
            pool.release(connection)
        request = connection.create_request(
            EVALSHA, self._counters_script.sha, len(keys), *keys, *args, decode=False
        )
        return cast(bytes, await request)

    async def get_counters(self, keys: Sequence[str]) -> tuple[int, ...]:
        if not keys:
            return ()
        with _boundary():
            raw = await self._client.mget([self.prefix + key for key in keys])
        return tuple(0 if v is None else _to_int(v, key) for v, key in zip(raw, keys, strict=True))

    # -- pub/sub and health ----------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        with _boundary():
            await self._client.publish(self.prefix + channel, message)

    def subscribe(self, channel: str, callback: Callable[[bytes], None]) -> None:
        self._callbacks.setdefault(self._prefix_bytes + channel.encode(), []).append(callback)
        self._wake.set()

    async def ping(self) -> None:
        with _boundary():
            await self._client.ping()
