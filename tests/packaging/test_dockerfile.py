"""docker/Dockerfile: stages, non-root runtime, migrations, healthcheck and command — checked by running them."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path

import attrs
import pytest
from aiohttp import web

from omnigate.testing.pytest_plugin import serve_gateway
from tests.packaging.conftest import DOCKER, ROOT

DEFAULT_MIGRATIONS_DIR = "/usr/local/share/omnigate/migrations"


@attrs.define
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = attrs.Factory(list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage (continuation lines joined, comments and the syntax directive dropped)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((DOCKER / "Dockerfile").read_text())


def runtime_of(stages: list[Stage]) -> Stage:
    return stages[-1]


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed), args
    return parsed


def test_multi_stage_wheel_build_then_slim_runtime(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    build, runtime = stages[0], runtime_of(stages)
    assert build.name == "build" and any("pip wheel" in run for run in build.all("RUN"))
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim|python:3\.\d+-slim", runtime.base)
    installs = [run for run in runtime.all("RUN") if "pip install" in run]
    assert installs and all("--no-index" in run and "from=build" in run for run in installs)
    # The runtime never receives the source tree or the build toolchain.
    assert not any(args.split()[0] in (".", "./") for args in runtime.all("COPY"))
    assert not any("build-essential" in run for run in runtime.all("RUN"))


def test_build_stage_copies_everything_the_wheel_needs(stages: list[Stage]) -> None:
    copied = {args.split()[0].rstrip("/") for args in stages[0].all("COPY")} | {
        source for args in stages[0].all("COPY") for source in args.split()[:-1]
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"], "omnigate", "migrations"}
    needed |= {
        pattern.split("/")[0]
        for sources in pyproject["tool"]["setuptools"]["data-files"].values()
        for pattern in sources
    }
    assert needed <= {path.rstrip("/") for path in copied}


def test_runtime_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    runtime = runtime_of(stages)
    users = runtime.all("USER")
    assert users, "the runtime stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert user.isdigit() and int(user) >= 1000
    position = {index: kw for index, (kw, _) in enumerate(runtime.instructions)}
    last_user = max(i for i, kw in position.items() if kw == "USER")
    assert all(kw not in ("RUN", "COPY", "ADD") for i, kw in position.items() if i > last_user), (
        "nothing may run or be copied after switching to the runtime user"
    )


def test_runtime_contains_the_migrations_where_the_gateway_looks(stages: list[Stage]) -> None:
    runtime = runtime_of(stages)
    target = runtime.env().get("OMNIGATE_MIGRATIONS_DIR", DEFAULT_MIGRATIONS_DIR)
    copies = [args.split() for args in runtime.all("COPY") if not args.startswith("--from")]
    migration_copies = [parts for parts in copies if parts[0].rstrip("/") == "migrations"]
    assert migration_copies and migration_copies[0][-1].rstrip("/") == target
    assert sorted(p.name for p in (ROOT / "migrations").glob("*.sql")), "no migrations to ship"
    ignored = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in ["migrations/0001_initial.sql", "omnigate/cli/serve.py", "pyproject.toml"]:
        assert not any(
            fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/") for pattern in ignored
        ), path


def test_healthcheck_probes_readiness(stages: list[Stage]) -> None:
    (healthcheck,) = runtime_of(stages).all("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = exec_form(command)
    assert "/health/ready" in " ".join(argv)


async def run_healthcheck(argv: list[str], port: int) -> int:
    process = await asyncio.create_subprocess_exec(
        *[sys.executable if part == "python" else part for part in argv],
        env={**os.environ, "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), timeout=20)


async def test_healthcheck_command_passes_when_ready_and_fails_otherwise(
    stages: list[Stage], tmp_path: Path
) -> None:
    (healthcheck,) = runtime_of(stages).all("HEALTHCHECK")
    argv = exec_form(healthcheck.partition(" CMD ")[2])
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'ready.db'}",
        "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1",
        "LOG_LEVEL": "WARNING",
    }
    async with serve_gateway(env) as base_url:
        assert await run_healthcheck(argv, int(base_url.rsplit(":", 1)[1])) == 0

    async def not_ready(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "not_ready"}}, status=503)

    app = web.Application()
    app.router.add_get("/health/ready", not_ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        assert await run_healthcheck(argv, port) != 0
    finally:
        await runner.cleanup()
    assert await run_healthcheck(argv, port) != 0  # nothing listening any more


def command_script(stages: list[Stage]) -> str:
    (command,) = runtime_of(stages).all("CMD")
    argv = exec_form(command)
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3
    return argv[2]


def console_script() -> str:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    (name,) = [name for name, target in scripts.items() if target == "omnigate.cli:main"]
    return str(name)


def stand_in(directory: Path, body: str) -> None:
    """An executable named like the console script, first on the PATH the command runs with."""
    path = directory / console_script()
    path.write_text(body)
    path.chmod(0o755)


async def run_command(script: str, directory: Path, env: dict[str, str]) -> tuple[int, str, int]:
    """The command under ``sh -c`` as the image runs it; returns the shell's pid, output and exit code."""
    base = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    process = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        script,
        env={**base, **env, "PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"},
        cwd=directory,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.pid, out.decode(), process.returncode


SERVER_VARIABLES = ("HOST", "PORT", "WORKERS", "GRACEFUL_TIMEOUT_S", "DATABASE_URL", "REDIS_URL")
SERVE = ["serve", "--host", "0.0.0.0"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [*SERVE, "--port", "8080", "--workers", "1", "grace=120"]),
        (
            {"PORT": "", "WORKERS": "", "GRACEFUL_TIMEOUT_S": ""},
            [*SERVE, "--port", "8080", "--workers", "1", "grace=120"],
        ),
        (
            {"PORT": "9000", "WORKERS": "4", "GRACEFUL_TIMEOUT_S": "45.5", "HOST": "127.0.0.1"},
            [*SERVE, "--port", "9000", "--workers", "4", "grace=45.5"],
        ),
    ],
)
async def test_command_execs_serve_with_port_workers_and_grace_from_the_environment(
    stages: list[Stage], tmp_path: Path, env: dict[str, str], expected: list[str]
) -> None:
    """The real `sh -c` command, with a stand-in console script that prints its pid, arguments and grace."""
    stand_in(
        tmp_path,
        '#!/bin/sh\necho "$$"; for arg in "$@"; do echo "$arg"; done\necho "grace=$GRACEFUL_TIMEOUT_S"\n',
    )
    shell_pid, out, returncode = await run_command(command_script(stages), tmp_path, env)
    assert returncode == 0
    pid, *args = out.splitlines()
    assert int(pid) == shell_pid, "the shell must exec the gateway, so that it is PID 1 and gets SIGTERM"
    assert args == expected


@pytest.mark.parametrize(("grace", "expected"), [("", 120.0), ("45.5", 45.5)])
async def test_serve_started_by_the_command_takes_its_grace_from_the_environment(
    stages: list[Stage], tmp_path: Path, grace: str, expected: float
) -> None:
    """The real CLI under the command (only the server start replaced): what `serve` would run hypercorn with."""
    stand_in(
        tmp_path,
        f"#!{sys.executable}\n"
        "import sys, attrs, orjson\n"
        "from omnigate.cli import main, servers\n"
        "servers.RUNNERS['hypercorn'] = lambda options: print(orjson.dumps(attrs.asdict(options)).decode()) or 0\n"
        "sys.exit(main())\n",
    )
    env = {
        "GRACEFUL_TIMEOUT_S": grace,
        "WORKERS": "2",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'omnigate.db'}",
        "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    _, out, returncode = await run_command(command_script(stages), tmp_path, env)
    assert returncode == 0, out
    options = json.loads(out.splitlines()[-1])
    assert options == {
        "host": "0.0.0.0",
        "port": 8080,
        "workers": 2,
        "graceful_timeout_s": expected,
        "reload": False,
    }
    assert (tmp_path / "omnigate.db").is_file(), "embedded SQLite is migrated before the server starts"


def test_command_runs_the_installed_console_script(stages: list[Stage]) -> None:
    runtime = runtime_of(stages)
    assert f"exec {console_script()} serve " in command_script(stages)
    # An empty GRACEFUL_TIMEOUT_S (compose passes one when .env leaves it out) keeps the image's default.
    image_default = runtime.env()["GRACEFUL_TIMEOUT_S"]
    assert "${GRACEFUL_TIMEOUT_S:-" + image_default + "}" in command_script(stages)
    exposed = runtime.all("EXPOSE")
    assert exposed == [runtime.env()["PORT"]]
