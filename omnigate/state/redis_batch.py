"""Group commit for Redis counter operations: every reserve/add queued while a batch is in flight goes in the next one script call."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence

import attrs

from omnigate.state.base import Counter

logger = logging.getLogger(__name__)

NOT_INTEGER = "not an integer"
MAX_OPS_PER_BATCH = 256
HOLD_S = 0.01  # how long a settlement may wait for company; reservations stay conservative meanwhile

# One script call runs a batch of operations in order, each exactly as if it ran alone (a script is
# atomic, so the batch is too). KEYS holds the batch's distinct keys; ARGV[1] packs every operation in
# one comma-separated string (the client's cost is per argument, so one argument per batch): per
# operation its mode ('r' checks limits, 'a' only adds) and counter count n, then per counter the KEYS
# index, amount, limit, ttl ms and its guard's KEYS index ('_' = none). Per operation the reply holds
# {admitted '1'|'0', refused index or '-1', n values, n PTTLs, the 0-based indices of the counters whose
# guard key is missing after the operation, space-separated, or '-'}, or {'E', message} when a key
# holds something other than an integer: that operation changes nothing and the others still run.
# A guard is only read (one that holds a non-integer counts as present). The reply is those strings
# joined by LF in one bulk string (the message's own LFs become spaces): the client parses one item
# per batch instead of hundreds.
#
# Each key is read once per batch (GET via pcall, so a wrong-type key fails only the operations that
# touch it, and PTTL); the operations then run on those values, and each key is written once at the
# end (INCRBY of its net change, PEXPIRE when an increment gave a TTL-less key its TTL), so Redis does
# a few calls per key instead of five per counter of every operation. Values are exact to 64 bits:
# sums run in Lua numbers (doubles) only while they stay below 2^52, past that a key's increments go
# to Redis one by one and its value is read back as text. Limit checks compare doubles (exact up to
# 2^53). A PTTL read once holds for the whole batch (a batch runs in well under a millisecond, PTTL's
# unit). An INCRBY that would overflow 64 bits fails the whole batch (Redis aborts the script).
BATCH_LUA = """
local t = {}
for token in string.gmatch(ARGV[1], '[^,]+') do t[#t + 1] = token end
local SAFE = 2 ^ 52
local num, text, pttl, bad = {}, {}, {}, {}
local delta, touched, exact, expire = {}, {}, {}, {}

local function load(k)
  if num[k] ~= nil or bad[k] ~= nil then return end
  local raw = redis.pcall('GET', k)
  if type(raw) == 'table' and raw.err then
    bad[k] = 'ERR value at ' .. k .. ' is NOT_INTEGER (' .. raw.err .. ')'
  elseif raw and not string.match(raw, '^%-?%d+$') then
    bad[k] = 'ERR value at ' .. k .. ' is NOT_INTEGER'
  else
    text[k] = raw or '0'
    num[k] = tonumber(text[k])
    pttl[k] = raw and redis.call('PTTL', k) or -2
    delta[k] = 0
  end
end

local function add(k, amount)
  local a = tonumber(amount)
  if not exact[k] and math.abs(num[k]) < SAFE and math.abs(a) < SAFE then
    num[k] = num[k] + a
    delta[k] = delta[k] + a
    text[k] = nil
  else
    if not exact[k] then
      redis.call('INCRBY', k, string.format('%d', delta[k]))
      exact[k] = true
    end
    redis.call('INCRBY', k, amount)
    text[k] = redis.call('GET', k)
    num[k] = tonumber(text[k])
  end
  touched[k] = true
end

local out = {}
local at = 1
while at <= #t do
  local check = t[at] == 'r'
  local n = tonumber(t[at + 1])
  local base = at + 2
  at = base + 5 * n
  local keys = {}
  local failure = nil
  for i = 1, n do
    local k = KEYS[tonumber(t[base + 5 * (i - 1)])]
    keys[i] = k
    load(k)
    if failure == nil and bad[k] ~= nil then failure = bad[k] end
  end
  if failure ~= nil then
    out[#out + 1] = 'E'
    out[#out + 1] = string.gsub(failure, '\\n', ' ')
  else
    local refused = -1
    if check then
      local pending = {}
      for i = 1, n do
        local p = base + 5 * (i - 1)
        local k = keys[i]
        local amount, limit = tonumber(t[p + 1]), t[p + 2]
        local now = pending[k] or num[k]
        if amount > 0 and limit ~= '_' and now + amount > tonumber(limit) then
          refused = i - 1
          break
        end
        pending[k] = now + amount
      end
    end
    out[#out + 1] = refused < 0 and '1' or '0'
    out[#out + 1] = tostring(refused)
    for i = 1, n do
      local k = keys[i]
      local p = base + 5 * (i - 1)
      if refused < 0 and t[p + 1] ~= '0' then
        add(k, t[p + 1])
        if pttl[k] < 0 then -- missing or without a TTL: the increment makes it exist
          local ttl = t[p + 3]
          if ttl ~= '_' then
            pttl[k] = tonumber(ttl)
            expire[k] = ttl
          else
            pttl[k] = -1
          end
        end
      end
      out[#out + 1] = text[k] or string.format('%d', num[k])
    end
    for i = 1, n do
      out[#out + 1] = string.format('%d', pttl[keys[i]])
    end
    local unguarded = {}
    for i = 1, n do
      local g = t[base + 5 * (i - 1) + 4]
      if g ~= '_' then
        local gk = KEYS[tonumber(g)]
        load(gk)
        if bad[gk] == nil and pttl[gk] == -2 then unguarded[#unguarded + 1] = tostring(i - 1) end
      end
    end
    out[#out + 1] = #unguarded > 0 and table.concat(unguarded, ' ') or '-'
  end
end
for k in pairs(touched) do
  if not exact[k] then
    redis.call('INCRBY', k, string.format('%d', delta[k]))
  end
  if expire[k] then
    redis.call('PEXPIRE', k, expire[k])
  end
end
return table.concat(out, '\\n')
""".replace("NOT_INTEGER", NOT_INTEGER)


@attrs.define
class Operation:
    """One queued reserve (``check``) or add and the future its caller awaits."""

    check: bool
    prefix: str
    keys: list[str]
    items: Sequence[Counter]
    ttls_ms: list[int | None]
    future: asyncio.Future[list[bytes]]


def encode(batch: Sequence[Operation]) -> tuple[list[str], str]:
    """The batch's distinct keys and its one packed argument (see BATCH_LUA)."""
    index: dict[str, int] = {}
    tokens: list[str] = []
    for op in batch:
        tokens.append(f"{'r' if op.check else 'a'},{len(op.items)}")
        for key, item, ttl_ms in zip(op.keys, op.items, op.ttls_ms, strict=True):
            at = index.setdefault(key, len(index) + 1)  # KEYS are 1-based
            limit = "_" if item.limit is None else item.limit
            ttl = "_" if ttl_ms is None else ttl_ms
            guard = "_" if item.guard is None else index.setdefault(op.prefix + item.guard, len(index) + 1)
            tokens.append(f"{at},{item.amount},{limit},{ttl},{guard}")
    return list(index), ",".join(tokens)


RunScript = Callable[[list[str], list[str]], Awaitable[bytes]]


class CounterBatcher:
    """Queues counter operations and sends them in batches, one script call in flight at a time.

    A lone request pays no wait (its batch leaves on the next loop iteration); under concurrency the
    operations that arrive while a call is in flight share the next one, so Redis round trips and the
    client's per-command cost are paid per batch, not per request. An operation whose caller was
    cancelled before its batch left is dropped; once sent it runs, like a single command would, and a
    reservation it made is given back (an add queued at once): a cancelled reserve leaves nothing.
    """

    def __init__(
        self, run_script: RunScript, max_ops: int = MAX_OPS_PER_BATCH, hold_s: float = HOLD_S
    ) -> None:
        self._run_script = run_script
        self._max_ops = max_ops
        self._hold_s = hold_s
        self._queue: list[Operation] = []
        self._drain_task: asyncio.Task[None] | None = None
        self._held: asyncio.TimerHandle | None = None

    async def submit(
        self, prefix: str, check: bool, items: Sequence[Counter], ttls_ms: list[int | None]
    ) -> list[bytes]:
        """Queue one operation and wait for its reply: {admitted, refused, values..., pttls..., unguarded}.

        ``ttls_ms`` are the items' TTLs as :func:`omnigate.state.base.check_counters` returned them.
        """
        return await self.enqueue(prefix, check, items, ttls_ms)

    def enqueue(
        self,
        prefix: str,
        check: bool,
        items: Sequence[Counter],
        ttls_ms: list[int | None],
        *,
        urgent: bool = True,
    ) -> asyncio.Future[list[bytes]]:
        """Queue one operation; its reply arrives in the future returned.

        A non-urgent operation (a settlement) may wait up to ``hold_s`` for another one to leave with:
        at low concurrency a request's settlement then rides with the next request's reservation.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bytes]] = loop.create_future()
        self._queue.append(
            Operation(check, prefix, [prefix + item.key for item in items], items, ttls_ms, future)
        )
        if urgent:
            self._start()
        elif self._drain_task is None and self._held is None:
            self._held = loop.call_later(self._hold_s, self._start)
        return future

    def _start(self) -> None:
        if self._held is not None:
            self._held.cancel()
            self._held = None
        if self._drain_task is None and self._queue:
            self._drain_task = asyncio.create_task(self._drain(), name="omnigate-state-counters")

    async def wait_idle(self) -> None:
        """Send what is held, and wait until every queued operation is answered (before closing)."""
        self._start()
        while self._drain_task is not None:
            await asyncio.wait({self._drain_task})

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [op for op in self._queue[: self._max_ops] if not op.future.done()]
                del self._queue[: self._max_ops]
                if batch:
                    await self._send(batch)
        finally:
            self._drain_task = None

    async def _send(self, batch: list[Operation]) -> None:
        keys, packed = encode(batch)
        try:
            reply = await self._run_script(keys, [packed])
        except Exception as error:
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(error)
            return
        except BaseException:
            for op in batch:
                op.future.cancel()
            raise
        try:
            results = _split(reply.split(b"\n"), batch)
        except (IndexError, ValueError):
            results = [RuntimeError(f"unexpected reply from the counters script: {reply!r}")] * len(batch)
        for op, result in zip(batch, results, strict=True):
            if op.future.done():  # its caller went away while the batch was in flight
                if op.check and isinstance(result, list) and result[0] == b"1":
                    self._give_back(op)
                continue
            if isinstance(result, BaseException):
                op.future.set_exception(result)
            else:
                op.future.set_result(result)

    def _give_back(self, op: Operation) -> None:
        items = [Counter(item.key, -item.amount, None, item.ttl_s) for item in op.items]
        future: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(functools.partial(report_failure, _give_back_failed))
        self._queue.append(
            Operation(False, op.prefix, op.keys, items, op.ttls_ms, future)
        )  # the drain loop sends it next
        self._start()


def report_failure(on_error: Callable[[Exception], None], future: asyncio.Future[list[bytes]]) -> None:
    """Done callback of an operation nobody awaits: its failure goes to ``on_error``."""
    error = None if future.cancelled() else future.exception()
    if isinstance(error, Exception):
        on_error(error)


def _give_back_failed(error: Exception) -> None:
    logger.warning("could not give back a reservation whose caller went away: %s", error)


def _split(reply: list[bytes], batch: list[Operation]) -> list[list[bytes] | BaseException]:
    """Each operation's part of a batch reply (a ValueError for an operation that failed alone)."""
    results: list[list[bytes] | BaseException] = []
    at = 0
    for op in batch:
        if reply[at] == b"E":
            results.append(ValueError(reply[at + 1].decode()))
            at += 2
        else:
            width = 3 + 2 * len(op.keys)
            if at + width > len(reply):
                raise IndexError(at + width)
            results.append(reply[at : at + width])
            at += width
    if at != len(reply):
        raise ValueError(f"{len(reply) - at} unread reply items")
    return results
