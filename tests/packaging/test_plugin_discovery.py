"""A separately installed plugin (plugins/omnigate-ollama) found through the `omnigate` entry point.

Nothing here registers the plugin: the gateway and the CLI find it because its distribution is installed
(`pip install -e plugins/omnigate-ollama`). Without it these tests skip, or fail under
OMNIGATE_TEST_REQUIRE_SERVICES=1 (CI installs it).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from omnigate.cli import main as cli_main
from omnigate.plugin.manager import DEFAULT_PLUGINS
from omnigate.testing import Reply, Usage
from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import Gateway, create_tenant
from tests.conftest import REQUIRE_SERVICES, gateway_env

DISTRIBUTION = "omnigate-ollama"
PLUGIN_VARIABLES = ("OLLAMA_BASE_URL", "OLLAMA_API_KEY", "OLLAMA_MODEL_PREFIXES", "OLLAMA_KEEP_ALIVE")


@pytest.fixture
def distribution() -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        message = f"{DISTRIBUTION} is not installed (pip install -e plugins/omnigate-ollama)"
        if REQUIRE_SERVICES:
            pytest.fail(message + " and OMNIGATE_TEST_REQUIRE_SERVICES=1")
        pytest.skip(message)


@pytest.fixture
async def fake(
    distribution: importlib.metadata.Distribution, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """The plugin's own fake Ollama, with OLLAMA_BASE_URL (read by the plugin at start-up) pointing at it."""
    from omnigate_ollama.testing import FakeOllama

    for name in PLUGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    async with FakeOllama() as server:
        monkeypatch.setenv("OLLAMA_BASE_URL", server.base_url)
        yield server


def test_the_plugin_is_not_part_of_omnigate(distribution: importlib.metadata.Distribution) -> None:
    (entry_point,) = [ep for ep in distribution.entry_points if ep.group == "omnigate"]
    assert (entry_point.name, entry_point.value) == ("ollama", "omnigate_ollama.plugin")
    assert "ollama" not in dict(DEFAULT_PLUGINS)
    assert not any(module.startswith("omnigate_ollama") for _, module in DEFAULT_PLUGINS)


async def test_autoloaded_plugin_serves_its_model_prefix(backend: dict[str, str], fake: Any) -> None:
    fake.enqueue(
        Reply.text("local answer", usage=Usage(input=11, output=2)),
        Reply.text(["stream", "ed"], usage=Usage(input=7, output=3)),
    )
    env = gateway_env(backend, OMNIGATE_DISABLE_PLUGIN_AUTOLOAD="0")
    async with run_gateway(env) as client:
        gateway = Gateway(client, await create_tenant(client))
        body = {"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}]}
        response = await gateway.chat(body)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "local answer"
        streamed = await gateway.chat({**body, "stream": True})
        assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
        rows = sorted(await gateway.usage_rows(), key=lambda row: row["input_tokens"])
    assert [
        (r["provider"], r["model"], r["status"], r["input_tokens"], r["output_tokens"]) for r in rows
    ] == [
        ("ollama", "llama3", "ok", 7, 3),
        ("ollama", "llama3", "ok", 11, 2),
    ]
    assert [request.json["model"] for request in fake.requests] == ["llama3", "llama3"]


async def test_blocking_the_plugin_removes_its_provider(embedded: dict[str, str], fake: Any) -> None:
    env = gateway_env(embedded, OMNIGATE_DISABLE_PLUGIN_AUTOLOAD="0", OMNIGATE_BLOCK_PLUGINS="ollama")
    async with run_gateway(env) as client:
        gateway = Gateway(client, await create_tenant(client))
        response = await gateway.chat(
            {"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_not_found"
    assert fake.request_count == 0


def plugins_listed(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    assert cli_main(["plugins", "--json"]) == 0
    return {plugin["name"]: plugin for plugin in json.loads(capsys.readouterr().out)}


def test_plugins_command_lists_distribution_and_version(
    distribution: importlib.metadata.Distribution,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OMNIGATE_DISABLE_PLUGIN_AUTOLOAD", "0")
    monkeypatch.delenv("OMNIGATE_BLOCK_PLUGINS", raising=False)
    listed = plugins_listed(capsys)["ollama"]
    assert listed == {
        "name": "ollama",
        "distribution": DISTRIBUTION,
        "version": distribution.version,
        "hooks": ["omnigate_register_commands", "omnigate_register_providers"],
        "builtin": False,
    }
    monkeypatch.setenv("OMNIGATE_BLOCK_PLUGINS", "ollama")
    assert "ollama" not in plugins_listed(capsys)
    with pytest.raises(SystemExit):  # its command is gone with it
        cli_main(["ollama", "models"])
    monkeypatch.setenv("OMNIGATE_BLOCK_PLUGINS", "")
    monkeypatch.setenv("OMNIGATE_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "ollama" not in plugins_listed(capsys)


async def test_plugin_cli_command_in_a_fresh_process(fake: Any, tmp_path: Path) -> None:
    """`omnigate-gateway ollama models --json`: the installed console script finds the plugin's command."""
    script = Path(sys.executable).with_name("omnigate-gateway")
    assert script.is_file()
    env = {
        **os.environ,
        "OLLAMA_BASE_URL": fake.base_url,
        "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "0",
        "OMNIGATE_BLOCK_PLUGINS": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    process = await asyncio.create_subprocess_exec(
        str(script),
        "ollama",
        "models",
        "--json",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    models = json.loads(out)
    assert [model["model"] for model in models] == ["ollama/llama3:latest", "ollama/qwen2.5:7b"]
    assert fake.requests[-1].path == "/api/tags"
