"""Runs every configuration side by side, interleaved, and prints one table (also written as JSON).

python -m bench.run                 # full run (about 10 minutes)
python -m bench.run --smoke         # a short run that only proves the harness works
python -m bench.run --configs aiohttp-proxy,omnigate-prod-uvicorn   # only these configurations
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg

from bench.procs import ROOT, free_port, python, started, tree_cpu_s, tree_rss_mb, wait_port, wait_ready

POSTGRES_ADMIN_URL = os.environ.get(
    "OMNIGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OMNIGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET_KEY = "4Wc0P0n0y3lq0m0ZCqJ6kV3x1mYx2QeZ9fJ8G7h6K5Q="
CONFIGS = (
    "direct",
    "aiohttp-proxy",
    "starlette-hypercorn",
    # The same floor answering with the contract's rate-limit, budget and x-omnigate headers (fixed values):
    # what carrying them costs the server, apart from computing them.
    "starlette-hypercorn-contract",
    "starlette-uvicorn",  # the same floor under uvicorn (uvloop + httptools): the ceiling for --server uvicorn
    "starlette-uvicorn-contract",
    "omnigate-embedded",
    "omnigate-prod",
    "omnigate-prod-workers2",
    "omnigate-prod-uvicorn",  # `serve --server uvicorn` (uvloop + httptools), 1 worker
)


RELAY_PACE_MS = 10.0


@attrs.frozen
class Mode:
    name: str
    concurrency: int
    stream: bool = False
    relay_pace_ms: float | None = None


@attrs.define
class Target:
    name: str
    url: str
    pid: int
    key: str | None = None
    rss_start: float = 0.0


def omnigate_env(upstream: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": upstream + "/v1",
        "OPENAI_API_KEY": "sk-bench",
        "ANTHROPIC_BASE_URL": upstream,
        "ANTHROPIC_API_KEY": "sk-ant-bench",
        "LOG_LEVEL": "WARNING",
        "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1",
        **extra,
    }


def cli_json(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        [python(), "-m", "omnigate", *args, "--json"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"omnigate {' '.join(args[:2])} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def provision(env: dict[str, str], production: bool) -> str:
    """An org and a project with limits and budgets set (so those policies run) but never reached."""
    if production:
        subprocess.run(
            [python(), "-m", "omnigate", "db", "upgrade"],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
    org = cli_json(env, "org", "create", "bench", "--daily-budget", "1000000", "--monthly-budget", "10000000")
    project = cli_json(
        env,
        "project",
        "create",
        "--org",
        org["id"],
        "bench",
        "--rpm",
        "100000000",
        "--tpm",
        "1000000000",
        "--daily-budget",
        "1000000",
        "--monthly-budget",
        "10000000",
    )
    return str(project["api_key"])


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    name = f"omnigate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measured(target: Target, mode: Mode, duration: float) -> dict[str, float]:
    """One load run, plus the server's CPU microseconds per request (its whole process tree)."""
    before = tree_cpu_s(target.pid) if target.pid else 0.0
    result = loadgen(target, mode.concurrency, duration, mode.stream, mode.relay_pace_ms)
    if target.pid and result["requests"] and mode.relay_pace_ms is None:  # paced: mostly idle time
        result["cpu_us_req"] = (tree_cpu_s(target.pid) - before) * 1e6 / result["requests"]
    return result


def loadgen(
    target: Target, concurrency: int, duration: float, stream: bool, relay_pace_ms: float | None = None
) -> dict[str, float]:
    args = [
        python(),
        "-m",
        "bench.loadgen",
        "--url",
        target.url + "/v1/chat/completions",
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
    ]
    if target.key:
        args += ["--key", target.key]
    if stream:
        args.append("--stream")
    if relay_pace_ms is not None:
        args += ["--relay-pace-ms", str(relay_pace_ms)]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def floor_server(config: str, port: int) -> list[str]:
    """The minimal Starlette proxy under hypercorn or uvicorn, each with uvloop and no access log."""
    if config.startswith("starlette-uvicorn"):
        server = [
            "uvicorn",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--port",
            str(port),
        ]
    else:
        server = ["hypercorn", "--worker-class", "uvloop", "--bind", f"127.0.0.1:{port}"]
    app = "bench.floors:contract_app" if config.endswith("-contract") else "bench.floors:app"
    return [python(), "-m", *server, app]


@contextlib.contextmanager
def targets(
    configs: list[str], upstream: str, tmp: Path, wrapper: tuple[str, ...] = (), ready_timeout_s: float = 60.0
) -> Iterator[list[Target]]:
    """The configurations' servers, started and ready; ``wrapper`` prefixes each server's command
    (``bench.instructions`` runs them under valgrind)."""
    with contextlib.ExitStack() as stack:
        found: list[Target] = []
        for config in configs:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            if config == "direct":
                found.append(Target(config, upstream, 0))
                continue
            if config == "aiohttp-proxy":
                proc = stack.enter_context(
                    started(
                        [*wrapper, python(), "-m", "bench.floors", "aiohttp", "--port", str(port)],
                        {"BENCH_UPSTREAM": upstream},
                        tmp / f"{config}.log",
                    )
                )
                wait_port(port, proc, ready_timeout_s)
                found.append(Target(config, url, proc.pid))
                continue
            if config.startswith("starlette-"):
                proc = stack.enter_context(
                    started(
                        [*wrapper, *floor_server(config, port)],
                        {"BENCH_UPSTREAM": upstream},
                        tmp / f"{config}.log",
                    )
                )
                wait_port(port, proc, ready_timeout_s)
                found.append(Target(config, url, proc.pid))
                continue
            production = config.startswith("omnigate-prod")
            extra = {"DATABASE_URL": f"sqlite:///{tmp / (config + '.db')}"}
            if production:
                db_url = stack.enter_context(postgres_database())
                extra = {
                    "DATABASE_URL": db_url,
                    "REDIS_URL": REDIS_URL,
                    "OMNIGATE_SECRET_KEY": SECRET_KEY,
                    "OMNIGATE_STATE_PREFIX": f"bench:{uuid.uuid4().hex[:6]}:",
                }
            env = omnigate_env(upstream, extra)
            key = provision(env, production)
            workers = "2" if config.endswith("workers2") else "1"
            server = "uvicorn" if config.endswith("uvicorn") else "hypercorn"
            serve = ["serve", "--server", server, "--port", str(port), "--workers", workers]
            proc = stack.enter_context(
                started([*wrapper, python(), "-m", "omnigate", *serve], env, tmp / f"{config}.log")
            )
            wait_ready(url, proc, ready_timeout_s)
            found.append(Target(config, url, proc.pid, key))
        yield found


def table(rows: list[dict[str, Any]]) -> str:
    columns = [
        "config",
        "mode",
        "rps",
        "p50_ms",
        "p99_ms",
        "ttfb_p50_ms",
        "added_p50_ms",
        "x_aiohttp",
        "x_starlette",
        "cpu_us_req",
        "cpu_x_starlette",
        "relay_p50_ms",
        "relay_p99_ms",
        "rss_start_mb",
        "rss_end_mb",
        "errors",
    ]
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def summarise(
    results: dict[tuple[str, str], list[dict[str, float]]], rss: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    def best(config: str, mode: str) -> dict[str, float] | None:
        runs = results.get((config, mode))
        return None if not runs else sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]  # the median run

    rows = []
    for config, mode in results:
        run = best(config, mode)
        assert run is not None
        direct = best("direct", mode)
        floor_a = best("aiohttp-proxy", mode)
        floor_s = best("starlette-hypercorn", mode)
        rows.append(
            {
                "config": config,
                "mode": mode,
                **run,
                # A run without a finished request has no percentiles (None); the caller reports it.
                "added_p50_ms": (
                    run["p50_ms"] - direct["p50_ms"]
                    if direct and run["p50_ms"] is not None and direct["p50_ms"] is not None
                    else None
                ),
                "x_aiohttp": run["rps"] / floor_a["rps"] if floor_a and floor_a["rps"] else None,
                "x_starlette": run["rps"] / floor_s["rps"] if floor_s and floor_s["rps"] else None,
                # The floor's server CPU per request over this one's (1.0 = as cheap as the floor).
                "cpu_x_starlette": (
                    floor_s["cpu_us_req"] / run["cpu_us_req"]
                    if floor_s and floor_s.get("cpu_us_req") and run.get("cpu_us_req")
                    else None
                ),
                "rss_start_mb": rss.get(config, (None, None))[0],
                "rss_end_mb": rss.get(config, (None, None))[1],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="short run: proves the harness, measures nothing"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; the median run is reported"
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help="comma-separated subset of: " + ", ".join(CONFIGS),
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args()
    duration, rounds = (0.7, 1) if args.smoke else (args.duration, args.rounds)
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    modes = [
        Mode("json", args.concurrency),
        Mode("json-c1", 1),
        Mode("stream", args.concurrency, stream=True),
        # One connection, events 10 ms apart: how long each event takes from the upstream's write to
        # the client (relay_p50_ms / relay_p99_ms; the direct row is the loopback itself).
        Mode("relay-c1", 1, stream=True, relay_pace_ms=RELAY_PACE_MS),
    ]
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"omnigate-bench-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    upstream_port = free_port()
    with started(
        [python(), "-m", "bench.upstream", "--port", str(upstream_port)], log=tmp / "upstream.log"
    ) as upstream_proc:
        wait_port(upstream_port, upstream_proc)
        upstream = f"http://127.0.0.1:{upstream_port}"
        with targets(configs, upstream, tmp) as found:
            for target in found:
                target.rss_start = tree_rss_mb(target.pid) if target.pid else 0.0
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            for target in found:  # warm-up: connections, caches, code paths
                loadgen(target, args.concurrency, min(duration, 1.0), False)
            for _ in range(rounds):
                for mode in modes:
                    for target in found:
                        results.setdefault((target.name, mode.name), []).append(
                            measured(target, mode, duration)
                        )
            rss = {t.name: (t.rss_start, tree_rss_mb(t.pid)) for t in found if t.pid}
    rows = summarise(results, rss)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "duration_s": duration,
        "rounds": rounds,
        "concurrency": args.concurrency,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(table(rows))
    failed = [r for r in rows if r["requests"] == 0 or r["errors"] > 0]
    if failed:
        raise SystemExit(
            f"configurations with errors or no successful request: {[(r['config'], r['mode']) for r in failed]}"
        )


if __name__ == "__main__":
    main()
