"""The gateway's Prometheus metrics: updated by a plain observer call per request, sampled from the runtime on scrape."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter as Tally
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from omnigate.metrics import multiprocess
from omnigate.metrics.labels import OTHER, CappedLabels, RouteLabels
from omnigate.observe import RequestOutcome
from omnigate.settings import Settings
from omnigate.usage.records import STATUS_CACHE_HIT, STATUS_OK

if TYPE_CHECKING:
    from omnigate.runtime import Runtime

logger = logging.getLogger("omnigate.metrics")

UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")
BREAKER_STATES = ("closed", "half_open", "open")
REFUSALS = {
    "budget_exceeded": "budget",
    "rate_limit_exceeded": "rate_limit",
    "circuit_open": "circuit_open",
    "overloaded": "overloaded",
}
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SAMPLE_INTERVAL_S = 1.0
NONE = "none"
MICROS_PER_USD = 1_000_000


class GatewayMetrics:
    """One registry per app. ``observe`` runs once per finished request (a handful of dict updates and
    two histogram observations; never pluggy, never I/O); ``sample`` applies the tallied counts and
    reads state held elsewhere (usage writer, breakers, prices) when scraped.

    Labels are bounded: route templates, providers, at most 100 model names (then ``other``), outcome
    and token kind; ``project`` only with METRICS_PER_PROJECT=true; never a key or request id.
    """

    def __init__(self, settings: Settings) -> None:
        self.per_project = settings.metrics_per_project
        self.cache_enabled = settings.response_cache_enabled
        self.multiprocess = multiprocess.enabled()
        self.registry = CollectorRegistry(auto_describe=False)
        self.routes = RouteLabels(())
        self.models = CappedLabels()
        self._runtime: Runtime | None = None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._pending: dict[tuple[Counter, tuple[str, ...]], float] = {}
        self._writer: object | None = None
        self._written = 0
        self._dropped = 0
        self._breaker_providers: set[str] = set()
        self._sampler: asyncio.Task[None] | None = None
        project = ("project",) if self.per_project else ()
        registry = self.registry
        self.http_requests = Counter(
            "omnigate_http_requests",
            "HTTP requests by route template, method and status code",
            ("route", "method", "status", *project),
            registry=registry,
        )
        self.chat_requests = Counter(
            "omnigate_chat_requests",
            "Chat requests by provider, model and outcome (ok, error, cancelled, cache_hit, truncated)",
            ("provider", "model", "outcome", *project),
            registry=registry,
        )
        self.upstream_latency = Histogram(
            "omnigate_upstream_latency_seconds",
            "Time a chat request spent waiting on its provider (all attempts)",
            ("provider",),
            registry=registry,
            buckets=UPSTREAM_BUCKETS,
        )
        self.overhead = Histogram(
            "omnigate_gateway_overhead_seconds",
            "Time a chat request spent in omnigate itself (duration minus upstream wait)",
            registry=registry,
            buckets=OVERHEAD_BUCKETS,
        )
        self.tokens = Counter(
            "omnigate_tokens",
            "Tokens by provider, model and kind (input includes cache reads and writes; output includes reasoning)",
            ("provider", "model", "kind", *project),
            registry=registry,
        )
        self.cost = Counter(
            "omnigate_cost_usd",
            "Known cost in USD by provider and model",
            ("provider", "model", *project),
            registry=registry,
        )
        self.unpriced = Counter(
            "omnigate_unpriced_requests",
            "Chat requests whose cost is unknown (no price for the model)",
            ("provider", "model"),
            registry=registry,
        )
        self.cache = Counter(
            "omnigate_response_cache_requests",
            "Response cache lookups: hit, or miss (a successful non-streaming answer not served from "
            "cache while RESPONSE_CACHE_ENABLED=true)",
            ("result",),
            registry=registry,
        )
        self.refusals = Counter(
            "omnigate_refusals",
            "Requests refused: budget, rate_limit, circuit_open, or overloaded (shed at MAX_IN_FLIGHT_REQUESTS)",
            ("reason", *project),
            registry=registry,
        )
        self.breakers = Gauge(
            "omnigate_circuit_breakers",
            "Circuit breakers (one per provider and project) in each state",
            ("provider", "state"),
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.queue_depth = Gauge(
            "omnigate_usage_queue_depth",
            "Usage records buffered and not yet written to the database",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.usage_written = Counter(
            "omnigate_usage_records_written", "Usage records written to the database", registry=registry
        )
        self.usage_dropped = Counter(
            "omnigate_usage_records_dropped",
            "Usage records lost (buffer full, rejected by the database, or unwritten at shutdown)",
            registry=registry,
        )
        self.in_flight = Gauge(
            "omnigate_in_flight_requests",
            "Chat requests being served now (streams until their end)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.unknown_prices = Gauge(
            "omnigate_unknown_price_models",
            "Distinct models served without a known price",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.workers = Gauge(
            "omnigate_workers",
            "Worker processes serving this gateway",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.workers.set(1)

    def bind(self, runtime: Runtime, routes: Iterable[Any]) -> None:
        """Attach the runtime (sampled on scrape) and the mounted routes (their templates become labels)."""
        self._runtime = runtime
        self.routes = RouteLabels(routes)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _count(self, metric: Counter, labels: tuple[str, ...], amount: float = 1) -> None:
        key = (metric, labels)
        self._pending[key] = self._pending.get(key, 0) + amount

    def _apply_counts(self) -> None:
        """Add the counts tallied since the last call to their Prometheus counters."""
        pending, self._pending = self._pending, {}
        for (metric, labels), amount in pending.items():
            self._child(metric, *labels).inc(amount)

    def observe(self, outcome: RequestOutcome) -> None:
        """The request observer: counts the request and, for chat, its tokens, cost, latency and outcome.

        Counts are tallied in a plain dict and applied to the Prometheus counters (each increment takes
        a lock, and with workers writes a shared file) when sampled: on every scrape, and every second
        with several workers. Latencies go to their histograms at once.
        """
        project = (outcome.project_id or NONE,) if self.per_project else ()
        route = self.routes.label(outcome.path)
        method = outcome.method if outcome.method in METHODS else OTHER
        self._count(self.http_requests, (route, method, str(outcome.status), *project))
        record = outcome.record
        if record is None:
            return
        provider = record.provider or NONE
        model = self.models.label(record.model) if record.provider else NONE
        self._count(self.chat_requests, (provider, model, record.status, *project))
        for kind, count in zip(
            TOKEN_KINDS,
            (
                record.input_tokens,
                record.output_tokens,
                record.cache_read_tokens,
                record.cache_write_tokens,
                record.reasoning_tokens,
            ),
            strict=True,
        ):
            if count:
                self._count(self.tokens, (provider, model, kind, *project), count)
        if record.cost_micros:
            self._count(self.cost, (provider, model, *project), record.cost_micros / MICROS_PER_USD)
        elif record.cost_micros is None and record.provider:
            self._count(self.unpriced, (provider, model))
        upstream_ms = outcome.upstream_ms or 0.0
        if upstream_ms > 0:
            self._child(self.upstream_latency, provider).observe(upstream_ms / 1000.0)
        self.overhead.observe(max(0.0, outcome.duration_ms - upstream_ms) / 1000.0)
        if record.status == STATUS_CACHE_HIT:
            self._count(self.cache, ("hit",))
        elif self.cache_enabled and record.status == STATUS_OK and not record.stream:
            self._count(self.cache, ("miss",))
        reason = REFUSALS.get(record.error_code or "")
        if reason is not None:
            self._count(self.refusals, (reason, *project))

    def sample(self) -> None:
        """Apply the tallied counts, and copy the runtime's state (writer queue and counters, breakers,
        unknown prices) into the metrics."""
        self._apply_counts()
        runtime = self._runtime
        if runtime is None:
            return
        from omnigate.runtime import NotStartedError

        try:
            writer = runtime.usage_writer
            unknown = len(runtime.prices.unknown_models)
        except NotStartedError:
            return
        if writer is not self._writer:  # a new lifespan, a new writer: its counters start at zero
            self._writer, self._written, self._dropped = writer, 0, 0
        self.queue_depth.set(writer.queue_depth)
        if writer.written > self._written:
            self.usage_written.inc(writer.written - self._written)
            self._written = writer.written
        if writer.dropped > self._dropped:
            self.usage_dropped.inc(writer.dropped - self._dropped)
            self._dropped = writer.dropped
        self.unknown_prices.set(unknown)
        self.in_flight.set(runtime.in_flight)
        self._sample_breakers(runtime)

    def _sample_breakers(self, runtime: Runtime) -> None:
        states = _breaker_states(runtime)
        if states is None:
            return
        tally = Tally((str(key).split(":", 1)[0], state) for key, state in states.items())
        self._breaker_providers.update(provider for provider, _ in tally)
        for provider in self._breaker_providers:
            for state in BREAKER_STATES:
                self._child(self.breakers, provider, state).set(tally.get((provider, state), 0))

    async def exposition(self) -> bytes:
        """The text exposition: this registry, or every worker's files in multiprocess mode."""
        self.sample()
        if not self.multiprocess:
            return generate_latest(self.registry)
        return await asyncio.to_thread(_merged_exposition)

    def start(self) -> None:
        """In multiprocess mode, sample this worker's state every second (other workers answer scrapes too)."""
        if self.multiprocess and self._sampler is None:
            self._sampler = asyncio.get_running_loop().create_task(
                self._sample_periodically(), name="omnigate-metrics-sampler"
            )

    async def aclose(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        if self.multiprocess:
            self.sample()  # the final counts of this worker
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # its live gauges (queue depth, workers) leave the sums

    async def _sample_periodically(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:
                logger.exception("sampling gateway metrics failed")
            await asyncio.sleep(SAMPLE_INTERVAL_S)


def _breaker_states(runtime: Runtime) -> dict[str, str] | None:
    """``"provider:project"`` → state from the circuit_breaker policy, if it runs and exposes ``states()``."""
    for name, policy in runtime.plugins.policies if runtime.plugins is not None else ():
        if name == "circuit_breaker":
            states = getattr(policy, "states", None)
            return dict(states()) if callable(states) else None
    return None


def _merged_exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
