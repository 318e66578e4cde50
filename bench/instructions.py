"""CPU instructions per request of each server, counted by valgrind (cachegrind): unlike requests/s or
CPU seconds, the count does not move with the machine's load, so a change of a few percent shows.

python -m bench.instructions                              # JSON at 50 connections, the floor and prod
python -m bench.instructions --stream --configs omnigate-prod --requests 500
python -m bench.instructions --stream --configs omnigate-prod --model claude-sonnet-4-5  # translated
python -m bench.instructions --stream --chunks 200        # a long answer: 200 content events per stream

Each configuration's server runs twice under valgrind (every process of it counted): once for the
warm-up alone, once for the warm-up plus ``--requests``; the difference divided by ``--requests`` is
what one request costs, start-up and shutdown cancelling out. Needs ``valgrind`` on the PATH; a
server runs ~50x slower under it, so a run takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from bench import run
from bench.procs import ROOT, free_port, python, started, wait_port

VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--trace-children=yes")
INSTRUCTIONS = re.compile(rb"I\s+refs:\s+([\d,]+)")


def instructions(logs: Path) -> int:
    """Instructions every process of one run executed (each writes its own valgrind log)."""
    return sum(
        int(match.group(1).replace(b",", b""))
        for log in logs.glob("vg.*.log")
        for match in INSTRUCTIONS.finditer(log.read_bytes())
    )


def answering(url: str, timeout_s: float = 900.0) -> None:
    """Wait until the server answers HTTP at all (a worker under valgrind takes a while to import)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=30)
            return
        except httpx.HTTPError:
            time.sleep(1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def load(target: run.Target, requests: int, concurrency: int, stream: bool, model: str) -> None:
    args = [python(), "-m", "bench.loadgen", "--url", target.url + "/v1/chat/completions", "--model", model]
    args += ["--concurrency", str(concurrency), "--duration", "3600", "--requests", str(requests)]
    if target.key:
        args += ["--key", target.key]
    if stream:
        args.append("--stream")
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["errors"] or result["requests"] != requests:
        raise RuntimeError(f"{target.name}: {result['errors']} errors in {result['requests']} requests")


def counted(
    config: str, upstream: str, tmp: Path, warmup: int, extra: int, concurrency: int, stream: bool, model: str
) -> int:
    """Instructions of one server run: start, ``warmup`` + ``extra`` requests, graceful stop."""
    logs = tmp / f"{config}-{extra}"
    logs.mkdir()
    wrapper = (*VALGRIND, "--cachegrind-out-file=/dev/null", f"--log-file={logs}/vg.%p.log")
    with run.targets([config], upstream, tmp, wrapper, ready_timeout_s=900.0) as (target,):
        answering(target.url)
        load(target, warmup, concurrency, stream, model)
        if extra:
            load(target, extra, concurrency, stream, model)
        os.killpg(target.pid, signal.SIGTERM)  # a graceful stop writes every process's count
        for _ in range(600):  # each process writes its count as it exits
            if all(INSTRUCTIONS.search(log.read_bytes()) for log in logs.glob("vg.*.log")):
                break
            time.sleep(1)
    return instructions(logs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", default="starlette-hypercorn,omnigate-prod")
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per configuration")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--model",
        default="gpt-4o-mini",
        help="claude-sonnet-4-5 makes omnigate translate the fake's Anthropic answer (floors relay OpenAI's)",
    )
    parser.add_argument("--chunks", type=int, default=20, help="content events per streamed answer")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed")
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - set(run.CONFIGS) - {"direct"})
    if unknown or "direct" in configs:
        parser.error(f"unknown configurations {unknown}; known: {', '.join(run.CONFIGS[1:])}")
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"omnigate-instructions-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    upstream_port = free_port()
    rows = []
    with started(
        [python(), "-m", "bench.upstream", "--port", str(upstream_port), "--chunks", str(args.chunks)],
        log=tmp / "upstream.log",
    ) as upstream_proc:
        wait_port(upstream_port, upstream_proc)
        upstream = f"http://127.0.0.1:{upstream_port}"
        for config in configs:
            counts = [
                counted(config, upstream, tmp, args.warmup, extra, args.concurrency, args.stream, args.model)
                for extra in (0, args.requests)
            ]
            base, total = counts
            rows.append((config, (total - base) / args.requests))
    floor = dict(rows).get("starlette-hypercorn")
    mode = ("stream" if args.stream else "json") + ("" if args.model == "gpt-4o-mini" else f" {args.model}")
    mode += "" if args.chunks == 20 else f" {args.chunks}"
    print(f"{'config':29} {'mode':6} {'instructions/req':>17} {'floor/this':>10}")
    for config, per_request in rows:
        ratio = f"{floor / per_request:.3f}" if floor else "-"
        print(f"{config:29} {mode:6} {per_request:17,.0f} {ratio:>10}")


if __name__ == "__main__":
    main()
