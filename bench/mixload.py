"""Mixed chat load for the soak: request variants (faults, disconnects, refusals), their shares, outcomes."""

from __future__ import annotations

import collections
import random
import time

import aiohttp
import attrs
import orjson

from bench.fault_upstream import BREAK, FAIL_429, FAIL_500, SLOW

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "gpt-4.1-mini", "openai/gpt-3.5-turbo")
BAD_KEYS = tuple(f"og-soak-revoked-{i}" for i in range(3))
# A project whose upstream keeps failing trips its circuit breaker: a healthy answer to the faults
# this load injects, so tolerated (and counted) for every variant.
BREAKER_OPEN = "503 circuit_open"
DEFAULT_MIX = "json:50,stream:30,error:8,disconnect:7,denied:5"


@attrs.frozen
class Variant:
    name: str
    stream: bool
    expect: str  # what a healthy gateway answers: "200", "<status> <error code>", or "cut" (the client left)
    marker: str = ""  # a fault for the fake upstream, see bench/fault_upstream.py
    cut: bool = False  # the client leaves after the first bytes of the stream
    bad_key: bool = False
    model: str | None = None  # None: one of MODELS at random


VARIANTS_BY_KIND = {
    "json": (Variant("json", False, "200"),),
    "stream": (Variant("stream", True, "200"),),
    # After the retries: an upstream 500 becomes 502, a 429 stays 429; a broken stream is a 200
    # whose body ends in an error event.
    "error": (
        Variant("upstream-500", False, "502 upstream_error", FAIL_500),
        Variant("upstream-429", False, "429 upstream_error", FAIL_429),
        Variant("upstream-break", True, "200", BREAK),
    ),
    "disconnect": (Variant("client-cut", True, "cut", SLOW, cut=True),),
    # A revoked or mistyped key; a model without a price, which a tenant with a budget may not use.
    "denied": (
        Variant("bad-key", False, "401 invalid_api_key", bad_key=True),
        Variant("unpriced-model", False, "400 model_price_unknown", model="gpt-soak-unpriced"),
    ),
}


@attrs.define
class Plan:
    variants: list[Variant]
    weights: list[float]
    keys: list[str]

    def pick(self, rng: random.Random) -> tuple[Variant, bytes, dict[str, str]]:
        variant = rng.choices(self.variants, self.weights)[0]
        body = {
            "model": variant.model or rng.choice(MODELS),
            "messages": [{"role": "user", "content": f"Say twenty words.{variant.marker}"}],
            "max_tokens": 64,
        }
        if variant.stream:
            body["stream"] = True
        key = rng.choice(BAD_KEYS if variant.bad_key else self.keys)
        headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        return variant, orjson.dumps(body), headers


def parse_mix(raw: str, keys: list[str]) -> Plan:
    """`json,stream` (equal shares) or `json:60,stream:30,error:10`; a kind's share is split over its variants."""
    variants: list[Variant] = []
    weights: list[float] = []
    for item in raw.split(","):
        kind, _, share = item.strip().partition(":")
        if kind not in VARIANTS_BY_KIND:
            raise SystemExit(f"unknown kind {kind!r} in --mix (known: {', '.join(VARIANTS_BY_KIND)})")
        for variant in VARIANTS_BY_KIND[kind]:
            variants.append(variant)
            weights.append(float(share or 1) / len(VARIANTS_BY_KIND[kind]))
    return Plan(variants, weights, keys)


@attrs.define
class Tally:
    finished: int = 0
    outcomes: collections.Counter[tuple[str, str]] = attrs.field(factory=collections.Counter)
    expected: dict[str, str] = attrs.field(factory=dict)

    def record(self, variant: Variant, outcome: str) -> None:
        self.finished += 1
        self.outcomes[variant.name, outcome] += 1
        self.expected[variant.name] = variant.expect

    def flag(self, name: str, outcome: str) -> str:
        if outcome == self.expected[name]:
            return ""
        return "~" if outcome == BREAKER_OPEN else "*"

    def unexpected(self) -> int:
        return sum(n for (name, outcome), n in self.outcomes.items() if self.flag(name, outcome) == "*")


async def send(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], cut: bool
) -> str:
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                return f"{response.status} {error_code(await response.read())}"
            if cut:
                await response.content.readany()
                response.close()  # drops the connection in the middle of the stream
                return "cut"
            async for _ in response.content.iter_any():
                pass
            return "200"
    except (TimeoutError, aiohttp.ClientError) as exc:
        return type(exc).__name__


def error_code(body: bytes) -> str:
    try:
        return str(orjson.loads(body)["error"]["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "(no error envelope)"


async def client(url: str, plan: Plan, rng: random.Random, tally: Tally, stop_at: float) -> None:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:  # one keep-alive connection each
        while time.monotonic() < stop_at:
            variant, body, headers = plan.pick(rng)
            tally.record(variant, await send(session, url, body, headers, variant.cut))
