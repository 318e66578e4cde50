"""Closed-loop load generator: N connections each sending requests back to back for D seconds; prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import aiohttp
import orjson

JSON_BODY = orjson.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say twenty words."}], "max_tokens": 64}
)
STREAM_BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say twenty words."}],
        "max_tokens": 64,
        "stream": True,
    }
)


Reader = Callable[[aiohttp.ClientResponse, float], Awaitable[None]]
_NO_TICKET = object()
STAMP = re.compile(rb'"content":"@(\d+) ')  # the send time the paced upstream writes in each event


async def worker(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    stop_at: float,
    tickets: Iterator[None],
    read: Reader,
    latencies: list[float],
    errors: list[int],
) -> None:
    """Requests back to back until ``stop_at`` or until ``tickets`` (one per request, shared by the
    workers) run out; ``read`` consumes each response body as it arrives."""
    while time.perf_counter() < stop_at and next(tickets, _NO_TICKET) is not _NO_TICKET:
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await read(response, started)
                if response.status != 200:
                    errors.append(response.status)
                    continue
        except (TimeoutError, aiohttp.ClientError):
            errors.append(0)
            continue
        latencies.append(time.perf_counter() - started)


def first_byte_reader(ttfbs: list[float]) -> Reader:
    """Reads the body in pieces, noting when the first one arrived."""

    async def read(response: aiohttp.ClientResponse, started: float) -> None:
        first = True
        async for _ in response.content.iter_any():
            if first:
                ttfbs.append(time.perf_counter() - started)
                first = False

    return read


def relay_reader(delays: list[float]) -> Reader:
    """Reads a paced stream line by line as it arrives: how long each stamped event took to get here."""

    async def read(response: aiohttp.ClientResponse, started: float) -> None:
        async for line in response.content:
            stamp = STAMP.search(line)
            if stamp:
                delays.append((time.time_ns() - int(stamp.group(1))) / 1e9)

    return read


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(
    url: str,
    key: str | None,
    concurrency: int,
    duration: float,
    stream: bool,
    relay_pace_ms: float | None,
    requests: int | None = None,
    model: str = "gpt-4o-mini",
) -> dict[str, float]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    latencies: list[float] = []
    ttfbs: list[float] = []
    delays: list[float] = []
    errors: list[int] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.perf_counter()
        stop_at = started + duration
        read = first_byte_reader(ttfbs)
        body = STREAM_BODY if stream else JSON_BODY
        if model != "gpt-4o-mini":
            body = orjson.dumps({**orjson.loads(body), "model": model})
        if relay_pace_ms is not None:
            read = relay_reader(delays)
            body = orjson.dumps({**orjson.loads(STREAM_BODY), "bench_pace_ms": relay_pace_ms})
        tickets = itertools.repeat(None) if requests is None else itertools.repeat(None, requests)
        workers = [
            worker(session, url, body, headers, stop_at, tickets, read, latencies, errors)
            for _ in range(concurrency)
        ]
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - started
    relay = {}
    if relay_pace_ms is not None:
        relay = {
            "relay_p50_ms": percentile(delays, 0.5) * 1000,
            "relay_p99_ms": percentile(delays, 0.99) * 1000,
        }
    return {
        **relay,
        "requests": len(latencies),
        "errors": len(errors),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "ttfb_p50_ms": percentile(ttfbs, 0.5) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--requests", type=int, help="stop after this many requests (or at --duration)")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--model", default="gpt-4o-mini", help="the model asked for (routes a gateway's request)"
    )
    parser.add_argument(
        "--relay-pace-ms",
        type=float,
        help="paced streams (events this far apart, each stamped by the upstream): report each event's relay delay",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        run(
            args.url,
            args.key,
            args.concurrency,
            args.duration,
            args.stream,
            args.relay_pace_ms,
            args.requests,
            args.model,
        )
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
