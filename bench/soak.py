"""RSS soak: one omnigate under steady mixed load; its memory sampled after a warm-up; growth and slope.

python -m bench.soak                          # 60 s warm-up, then 10 minutes against PostgreSQL + Redis
python -m bench.soak --config embedded --minutes 3
python -m bench.soak --smoke                  # about 20 s: proves the harness works, judges nothing
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import random
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from bench.mixload import DEFAULT_MIX, Plan, Tally, client, parse_mix
from bench.procs import ROOT, free_port, python, started, tree_rss_mb, wait_port, wait_ready
from bench.run import REDIS_URL, SECRET_KEY, omnigate_env, postgres_database, provision

GROWTH_LIMIT_PCT = 10.0
TENANTS = 3  # each an org + project with limits and budgets, so per-tenant state is exercised (1 in --smoke)
# A log line's timestamp and request id, so lines that say the same thing are counted together.
LOG_NOISE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ |\[req_[0-9a-f]+\] ")
MAX_LOG_KINDS = 50


@attrs.frozen
class Sample:
    t_s: float  # seconds since the baseline; negative during the warm-up
    phase: str
    rss_mb: float  # the serving worker process
    tree_mb: float  # the whole server process tree (the supervising parent included)
    rps: float  # requests finished per second since the previous sample, whatever their outcome
    finished: int
    load1: float


def worker_pid(server_pid: int) -> int:
    """The serving worker: the biggest child of the server process (the parent only supervises), else itself."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return max((int(pid) for pid in children), key=tree_rss_mb, default=server_pid)


def memory(server_pid: int, worker: int) -> tuple[int, float, float]:
    """The worker (found again if it was replaced), its RSS and the whole tree's, in MB."""
    if not Path(f"/proc/{worker}").exists():
        worker = worker_pid(server_pid)
        print(f"the worker process was replaced (now {worker}): its memory starts again")
    return worker, tree_rss_mb(worker), tree_rss_mb(server_pid)


async def sample(
    server_pid: int, tally: Tally, warmup_s: float, measure_s: float, interval_s: float
) -> list[Sample]:
    start = time.monotonic()
    ticks = list(_frange(interval_s, warmup_s, interval_s))
    ticks += [warmup_s + t for t in _frange(0.0, measure_s + interval_s / 2, interval_s)]
    samples: list[Sample] = []
    last_at, last_finished, worker = start, 0, worker_pid(server_pid)
    for tick in ticks:
        await asyncio.sleep(max(0.0, start + tick - time.monotonic()))
        now, finished = time.monotonic(), tally.finished
        worker, rss_mb, tree_mb = memory(server_pid, worker)
        row = Sample(
            t_s=round(now - start - warmup_s, 1) + 0.0,  # + 0.0: never print -0.0
            phase="warm-up" if tick < warmup_s else "soak",
            rss_mb=rss_mb,
            tree_mb=tree_mb,
            rps=(finished - last_finished) / (now - last_at),
            finished=finished,
            load1=os.getloadavg()[0],
        )
        samples.append(row)
        print(_row(row), flush=True)
        last_at, last_finished = now, finished
    return samples


def _frange(first: float, stop: float, step: float) -> Iterator[float]:
    value = first
    while value < stop:
        yield value
        value += step


async def soak(
    url: str,
    plan: Plan,
    server_pid: int,
    concurrency: int,
    warmup_s: float,
    measure_s: float,
    interval_s: float,
) -> tuple[list[Sample], Tally]:
    tally = Tally()
    stop_at = time.monotonic() + warmup_s + measure_s + interval_s  # the load outlasts the last sample
    clients = [
        asyncio.create_task(client(url, plan, random.Random(seed), tally, stop_at))
        for seed in range(concurrency)
    ]
    print(_header(), flush=True)
    try:
        samples = await sample(server_pid, tally, warmup_s, measure_s, interval_s)
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    return samples, tally


class StderrTail:
    """Reads a child's stderr as it comes (a full pipe would block the child) and counts each kind of line."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        self.lines = 0
        self.kinds: collections.Counter[str] = collections.Counter()
        if stream is not None:
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines += 1
            kind = LOG_NOISE.sub("", raw.decode(errors="replace")).strip()[:200]
            if kind in self.kinds or len(self.kinds) < MAX_LOG_KINDS:
                self.kinds[kind] += 1


@attrs.frozen
class Gateway:
    url: str
    pid: int
    keys: list[str]
    stderr: StderrTail


def start_gateway(
    stack: contextlib.ExitStack, config: str, server: str, upstream: str, tenants: int
) -> Gateway:
    """The same configurations as bench/run.py's omnigate-prod and omnigate-embedded, with several tenants."""
    production = config == "prod"
    if production:
        extra = {
            "DATABASE_URL": stack.enter_context(postgres_database()),
            "REDIS_URL": REDIS_URL,
            "OMNIGATE_SECRET_KEY": SECRET_KEY,
            "OMNIGATE_STATE_PREFIX": f"soak:{uuid.uuid4().hex[:6]}:",
        }
    else:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omnigate-soak-")))
        extra = {"DATABASE_URL": f"sqlite:///{tmp / 'soak.db'}"}
    env = omnigate_env(upstream, extra)
    keys = [provision(env, production) for _ in range(tenants)]
    port = free_port()
    process = stack.enter_context(
        started(
            [python(), "-m", "omnigate", "serve", "--server", server, "--port", str(port), "--workers", "1"],
            env,
        )
    )
    tail = StderrTail(process.stderr)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process)
    return Gateway(url, process.pid, keys, tail)


def start_upstream(stack: contextlib.ExitStack) -> str:
    port = free_port()
    process = stack.enter_context(started([python(), "-m", "bench.fault_upstream", "--port", str(port)]))
    StderrTail(process.stderr)
    wait_port(port, process)
    return f"http://127.0.0.1:{port}"


def slope_mb_per_min(samples: list[Sample], field: str) -> float:
    if len(samples) < 2:
        return float("nan")
    minutes = [s.t_s / 60 for s in samples]
    values = [float(getattr(s, field)) for s in samples]
    return statistics.linear_regression(minutes, values).slope


def judge(samples: list[Sample], tally: Tally) -> dict[str, Any]:
    measured = [s for s in samples if s.phase == "soak"]
    base, end = measured[0], measured[-1]
    requests = end.finished - base.finished
    return {
        "baseline_rss_mb": base.rss_mb,
        "end_rss_mb": end.rss_mb,
        "growth_pct": (end.rss_mb - base.rss_mb) / base.rss_mb * 100,
        "slope_mb_per_min": slope_mb_per_min(measured, "rss_mb"),
        "baseline_tree_mb": base.tree_mb,
        "end_tree_mb": end.tree_mb,
        "tree_growth_pct": (end.tree_mb - base.tree_mb) / base.tree_mb * 100,
        "tree_slope_mb_per_min": slope_mb_per_min(measured, "tree_mb"),
        "requests": requests,
        "mb_per_10k_requests": (end.rss_mb - base.rss_mb) / requests * 10_000 if requests else float("nan"),
        "mean_rps": requests / (end.t_s - base.t_s) if end.t_s > base.t_s else float("nan"),
        "unexpected_outcomes": tally.unexpected(),
    }


def _header() -> str:
    return f"{'t_s':>8}  {'phase':<8}  {'rss_mb':>8}  {'tree_mb':>8}  {'rps':>8}  {'load1':>5}"


def _row(s: Sample) -> str:
    return f"{s.t_s:>8.1f}  {s.phase:<8}  {s.rss_mb:>8.1f}  {s.tree_mb:>8.1f}  {s.rps:>8.1f}  {s.load1:>5.2f}"


def print_summary(verdict: dict[str, Any], tally: Tally, smoke: bool) -> None:
    print(
        "\noutcomes (variant, outcome, count; * = not what a healthy gateway answers, ~ = circuit breaker open)"
    )
    for (name, outcome), count in sorted(tally.outcomes.items()):
        flag = tally.flag(name, outcome)
        print(f"  {name:<16} {outcome:<36} {count:>8} {flag}")
    v = verdict
    print(
        f"\nworker RSS {v['baseline_rss_mb']:.1f} → {v['end_rss_mb']:.1f} MB: {v['growth_pct']:+.2f} %, "
        f"slope {v['slope_mb_per_min']:+.3f} MB/min, {v['mb_per_10k_requests']:+.3f} MB per 10k requests"
    )
    print(
        f"process tree {v['baseline_tree_mb']:.1f} → {v['end_tree_mb']:.1f} MB: {v['tree_growth_pct']:+.2f} %, "
        f"slope {v['tree_slope_mb_per_min']:+.3f} MB/min"
    )
    print(f"{v['requests']} requests after the baseline, {v['mean_rps']:.1f} req/s on average")
    if smoke:
        print("smoke run: no verdict")
    else:
        passed = v["growth_pct"] < GROWTH_LIMIT_PCT
        print(
            f"{'PASS' if passed else 'FAIL'}: worker RSS growth {v['growth_pct']:+.2f} % (limit {GROWTH_LIMIT_PCT:.0f} %)"
        )


def source() -> dict[str, Any]:
    """The commit measured, and the files that differed from it (the server runs the working tree)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    return {"commit": git("rev-parse", "HEAD").strip(), "modified": git("status", "--porcelain").splitlines()}


def machine() -> dict[str, Any]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mem_available": meminfo["MemAvailable"].strip(),
        "loadavg": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="measured time after the warm-up")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of load before the baseline")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--config", choices=("prod", "embedded"), default="prod")
    parser.add_argument("--server", choices=("hypercorn", "uvicorn"), default="hypercorn")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"kinds and shares (default {DEFAULT_MIX})")
    parser.add_argument("--smoke", action="store_true", help="about 20 s: proves the harness, judges nothing")
    parser.add_argument("--out", help="results JSON (default bench/soak_results.json; none for --smoke)")
    args = parser.parse_args()
    warmup_s, measure_s, interval_s = (
        (5.0, 15.0, 2.5) if args.smoke else (args.warmup, args.minutes * 60, args.interval)
    )
    parse_mix(args.mix, [])  # a bad --mix fails before anything starts
    started_machine, measured_source = machine(), source()
    with contextlib.ExitStack() as stack:
        upstream = start_upstream(stack)
        gateway = start_gateway(stack, args.config, args.server, upstream, 1 if args.smoke else TENANTS)
        plan = parse_mix(args.mix, gateway.keys)
        print(
            f"omnigate {args.config} under {args.server} at {gateway.url}, "
            f"{args.concurrency} connections, mix {args.mix}"
        )
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        samples, tally = asyncio.run(
            soak(
                gateway.url + "/v1/chat/completions",
                plan,
                gateway.pid,
                args.concurrency,
                warmup_s,
                measure_s,
                interval_s,
            )
        )
    verdict = judge(samples, tally)
    print_summary(verdict, tally, args.smoke)
    print(f"server stderr: {gateway.stderr.lines} lines")
    for kind, count in gateway.stderr.kinds.most_common(10):
        print(f"  {count:>8}  {kind}")
    out = args.out or (None if args.smoke else str(ROOT / "bench" / "soak_results.json"))
    if out:
        report = {
            "machine": {"start": started_machine, "end": machine()},
            "source": measured_source,
            "args": vars(args),
            "verdict": verdict,
            "samples": [attrs.asdict(s) for s in samples],
            "outcomes": [
                {"variant": n, "outcome": o, "count": c} for (n, o), c in sorted(tally.outcomes.items())
            ],
            "server_stderr": {
                "lines": gateway.stderr.lines,
                "kinds": dict(gateway.stderr.kinds.most_common()),
            },
        }
        Path(out).write_text(json.dumps(report, indent=2))
    if args.smoke and (verdict["unexpected_outcomes"] or not tally.outcomes.get(("json", "200"))):
        raise SystemExit("smoke: the gateway gave unexpected answers (marked * above)")


if __name__ == "__main__":
    main()
