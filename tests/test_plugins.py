"""The plugin system: every hook documented and exercised, blocking, entry-point discovery."""

from __future__ import annotations

import argparse
import inspect
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pluggy
import pytest

from omnigate import hookimpl
from omnigate.cli import main as cli_main
from omnigate.observe import RequestOutcome
from omnigate.plugin import spec
from omnigate.plugin.interfaces import Call, PluginContext
from omnigate.plugin.manager import DEFAULT_PLUGINS, build_plugin_manager, plugin_names
from omnigate.plugin.registry import (
    CommandContext,
    CommandRegistry,
    PolicyRegistry,
    ProviderRegistry,
    RegistrationError,
)
from omnigate.settings import Settings
from tests.conftest import ClientFactory

HOOK_NAMES = sorted(
    name for name, _ in inspect.getmembers(spec, inspect.isfunction) if name.startswith("omnigate_")
)


def test_every_hook_is_documented_and_tested() -> None:
    tests = {name for name in globals() if name.startswith("test_hook_")}
    for name in HOOK_NAMES:
        doc = inspect.getdoc(getattr(spec, name)) or ""
        assert len(doc.splitlines()) >= 3, f"{name} needs a docstring with its contract"
        assert ":returns:" in doc and ("Runs" in doc or "called" in doc), (
            f"{name}: say what it returns and when it runs"
        )
        params = [p for p in inspect.signature(getattr(spec, name)).parameters]
        for param in params:
            assert f":param {param}:" in doc, f"{name}: document parameter {param!r}"
        assert f"test_hook_{name}" in tests, f"hook {name} has no test_hook_{name}"


def test_misspelt_hook_fails_at_start() -> None:
    class Typo:
        @hookimpl
        def omnigate_register_provider(self, registry: Any) -> None:  # missing the final "s"
            pass

    with pytest.raises(pluggy.PluginValidationError):
        build_plugin_manager(Settings(disable_plugin_autoload=True), extra_plugins=[("typo", Typo())])


def test_blocking_removes_builtins_and_extras_by_name() -> None:
    class Extra:
        @hookimpl
        def omnigate_register_commands(self, registry: CommandRegistry) -> None:
            registry.add("extra", "x", lambda p: None, lambda a, c: 0)

    settings = Settings(disable_plugin_autoload=True, block_plugins=("cli-info", "extra"))
    pm = build_plugin_manager(settings, extra_plugins=[("extra", Extra())])
    names = plugin_names(pm)
    assert "cli-info" not in names and "extra" not in names
    assert {name for name, _ in DEFAULT_PLUGINS} - {"cli-info"} <= set(names)


class ProviderPlugin:
    @hookimpl
    def omnigate_register_providers(self, registry: ProviderRegistry, settings: Settings) -> None:
        registry.add("echo", lambda context: EchoProvider(), model_prefixes=("echo-",))


class EchoProvider:
    name = "echo"

    async def send(self, call: Call) -> Any:
        return {"echo": call.target.model}

    async def aclose(self) -> None:
        return None


def test_hook_omnigate_register_providers() -> None:
    pm = build_plugin_manager(
        Settings(disable_plugin_autoload=True), extra_plugins=[("echo", ProviderPlugin())]
    )
    registry = ProviderRegistry()
    pm.hook.omnigate_register_providers(registry=registry, settings=Settings())
    (spec_,) = [s for s in registry.specs() if s.name == "echo"]
    assert spec_.model_prefixes == ("echo-",)
    assert spec_.factory(PluginContext(settings=Settings())).name == "echo"
    with pytest.raises(RegistrationError):
        registry.add("echo", lambda context: EchoProvider())


def test_hook_omnigate_register_policies() -> None:
    async def noop(call: Call, call_next: Any) -> Any:
        return await call_next(call)

    class Policies:
        @hookimpl
        def omnigate_register_policies(self, registry: PolicyRegistry, settings: Settings) -> None:
            registry.add("audit", lambda context: noop, before="budget")
            registry.add("tagging", lambda context: noop, after="retry")
            registry.add("orphan", lambda context: noop, after="cache")  # its anchor is blocked below

    settings = Settings(disable_plugin_autoload=True, block_plugins=("cache", "fallback"))
    pm = build_plugin_manager(settings, extra_plugins=[("p", Policies())])
    registry = PolicyRegistry()
    pm.hook.omnigate_register_policies(registry=registry, settings=settings)
    order = [s.name for s in registry.ordered()]
    assert order == ["rate_limit", "audit", "budget", "circuit_breaker", "retry", "tagging", "orphan"]
    with pytest.raises(RegistrationError):
        registry.add("retry", lambda context: noop)


def test_hook_omnigate_register_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--times", type=int, default=1)

    async def run(args: argparse.Namespace, context: CommandContext) -> int:
        seen["times"] = args.times
        seen["pm"] = context.plugin_manager
        print("hello " * args.times)
        return 3

    class Commands:
        @hookimpl
        def omnigate_register_commands(self, registry: CommandRegistry) -> None:
            registry.add("hello", "say hello", configure, run)

    original = build_plugin_manager
    monkeypatch.setattr(
        "omnigate.cli.build_plugin_manager",
        lambda settings: original(settings, extra_plugins=[("hello", Commands())]),
    )
    assert cli_main(["hello", "--times", "2"]) == 3
    assert seen["times"] == 2 and isinstance(seen["pm"], pluggy.PluginManager)
    assert "hello hello" in capsys.readouterr().out


class Recorder:
    """Implements the app-level hooks and records what they saw."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.outcomes: list[RequestOutcome] = []

    @hookimpl
    def omnigate_asgi_wrapper(self, settings: Settings) -> Any:
        def wrap(app: Any) -> Any:
            async def wrapped(scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] == "http":
                    principal = scope.get("omnigate.principal")
                    self.events.append(f"wrapper:{scope['path']}:{principal is not None}")
                await app(scope, receive, send)

            return wrapped

        return wrap

    @hookimpl
    def omnigate_startup(self, app: Any) -> Any:
        async def started() -> None:
            self.events.append(f"startup:{app.state.runtime.db.dialect}")

        return started()

    @hookimpl
    def omnigate_shutdown(self, app: Any) -> None:
        self.events.append("shutdown")

    @hookimpl
    def omnigate_request_observer(self, settings: Settings) -> Any:
        return self.outcomes.append


async def test_hook_omnigate_asgi_wrapper(make_client: ClientFactory) -> None:
    recorder = Recorder()
    client = await make_client(plugins=[("recorder", recorder)])
    await client.get("/health/live")
    await client.get("/v1/me", headers={"x-api-key": "og-unknown"})
    assert "wrapper:/health/live:False" in recorder.events
    # Auth refused the unknown key before the wrapper: wrappers run inside authentication.
    assert not any(e.startswith("wrapper:/v1/me") for e in recorder.events)


async def test_hook_omnigate_startup(make_client: ClientFactory) -> None:
    recorder = Recorder()
    await make_client(plugins=[("recorder", recorder)])
    assert recorder.events[0] in {"startup:sqlite", "startup:postgresql"}


async def test_hook_omnigate_shutdown(backend: dict[str, str]) -> None:
    from omnigate.testing.pytest_plugin import run_gateway
    from tests.conftest import gateway_env

    recorder = Recorder()
    async with run_gateway(gateway_env(backend), [("recorder", recorder)]):
        assert "shutdown" not in recorder.events
    assert recorder.events[-1] == "shutdown"


async def test_hook_omnigate_request_observer(make_client: ClientFactory) -> None:
    recorder = Recorder()
    client = await make_client(plugins=[("recorder", recorder)])
    response = await client.get("/nope", headers={"x-request-id": "trace-42"})
    assert response.status_code == 404
    (outcome,) = recorder.outcomes
    assert outcome.request_id == "trace-42" and outcome.status == 404 and outcome.path == "/nope"
    assert outcome.duration_ms >= 0


def test_hook_omnigate_migration_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "plugin_migrations"
    extra.mkdir()
    (extra / "9001_plugin_table.sql").write_text(
        "-- depends: 0003_multikey_monthly_meta\nCREATE TABLE plugin_things (id TEXT PRIMARY KEY);\n"
    )
    (extra / "9001_plugin_table.rollback.sql").write_text("DROP TABLE plugin_things;\n")

    class Migrations:
        @hookimpl
        def omnigate_migration_dirs(self) -> list[Path]:
            return [extra]

    original = build_plugin_manager
    monkeypatch.setattr(
        "omnigate.cli.build_plugin_manager",
        lambda settings: original(settings, extra_plugins=[("migrations", Migrations())]),
    )
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert cli_main(["db", "upgrade"]) == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"plugin_things", "api_keys", "organizations"} <= tables


def test_entry_point_plugins_are_discovered_and_can_be_blocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real distribution on sys.path, found through the `omnigate` entry-point group."""
    (tmp_path / "omnigate_sample_plugin.py").write_text(
        textwrap.dedent(
            """
            from omnigate import hookimpl

            @hookimpl
            def omnigate_register_commands(registry):
                registry.add("sample", "a sample command", lambda parser: None, lambda args, context: 7)
            """
        )
    )
    dist_info = tmp_path / "omnigate_sample_plugin-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: omnigate-sample-plugin\nVersion: 1.2.3\n"
    )
    (dist_info / "entry_points.txt").write_text("[omnigate]\nsample = omnigate_sample_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "omnigate_sample_plugin", raising=False)

    pm = build_plugin_manager(Settings())
    assert "sample" in plugin_names(pm)
    from omnigate.plugin.manager import describe_plugins

    (described,) = [p for p in describe_plugins(pm) if p["name"] == "sample"]
    assert described["distribution"] == "omnigate-sample-plugin" and described["version"] == "1.2.3"
    assert described["hooks"] == ["omnigate_register_commands"]

    monkeypatch.setenv("OMNIGATE_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert cli_main(["sample"]) == 7
    monkeypatch.setenv("OMNIGATE_BLOCK_PLUGINS", "sample")
    assert "sample" not in plugin_names(build_plugin_manager(Settings(block_plugins=("sample",))))
    with pytest.raises(SystemExit):
        cli_main(["sample"])


def test_pluggy_is_not_called_per_request() -> None:
    """The hot path holds plain callables: no module outside plugin/ and cli/ touches `pm.hook` at request time."""
    root = Path(__file__).resolve().parents[1] / "omnigate"
    offenders = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(("plugin/", "cli/")) or relative == "app.py":
            continue
        if ".hook." in path.read_text():
            offenders.append(relative)
    assert offenders == []


async def test_observer_errors_do_not_break_requests(make_client: ClientFactory) -> None:
    class Broken:
        @hookimpl
        def omnigate_request_observer(self, settings: Settings) -> Any:
            def observe(outcome: RequestOutcome) -> None:
                raise ValueError("observer bug")

            return observe

    client: httpx.AsyncClient = await make_client(plugins=[("broken", Broken())])
    assert (await client.get("/health/live")).status_code == 200
