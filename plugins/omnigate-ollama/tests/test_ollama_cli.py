"""`omnigate-gateway ollama models`: argument wiring and output against FakeOllama's /api/tags."""

from __future__ import annotations

import argparse
import json
import socket

import pytest
from omnigate.plugin.registry import CommandContext, CommandRegistry
from omnigate.settings import Settings

from omnigate_ollama import plugin
from omnigate_ollama.testing import FakeOllama

CONTEXT = CommandContext(plugin_manager=None, settings_loader=Settings)


def parse(*argv: str) -> argparse.Namespace:
    """Parse as the gateway's CLI does: the command registered through the plugin's hook."""
    registry = CommandRegistry()
    plugin.omnigate_register_commands(registry)
    (spec,) = registry.specs()
    parser = argparse.ArgumentParser(prog=f"omnigate-gateway {spec.name}")
    spec.configure(parser)
    return parser.parse_args(list(argv))


async def run(*argv: str) -> int:
    registry = CommandRegistry()
    plugin.omnigate_register_commands(registry)
    (spec,) = registry.specs()
    result = spec.run(parse(*argv), CONTEXT)
    assert not isinstance(result, int) and result is not None
    return int(await result or 0)


async def test_models_json_names_each_model_as_the_gateway_routes_it(
    ollama_env: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("models", "--json") == 0
    models = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in models] == ["ollama/llama3:latest", "ollama/qwen2.5:7b"]
    assert models[0]["parameter_size"] == "8.0B" and models[0]["size_bytes"] == 4_661_224_676
    assert ollama_env.requests[-1].path == "/api/tags"


async def test_models_table_and_base_url_flag(
    fake: FakeOllama, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:9")  # overridden by the flag
    assert await run("models", "--base-url", fake.base_url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["MODEL", "PARAMETER_SIZE", "QUANTIZATION_LEVEL", "SIZE", "MODIFIED_AT"]
    assert lines[1].split()[:5] == ["ollama/llama3:latest", "8.0B", "Q4_0", "4.7", "GB"]


async def test_unreachable_or_refusing_servers_exit_1_with_one_line(
    fake: FakeOllama, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setenv("OLLAMA_BASE_URL", f"http://127.0.0.1:{closed_port}")
    assert await run("models", "--timeout", "2") == 1
    assert capsys.readouterr().err.startswith(f"error: cannot reach Ollama at http://127.0.0.1:{closed_port}")

    fake.api_key = "expected-token-000000"
    monkeypatch.setenv("OLLAMA_BASE_URL", fake.base_url)
    monkeypatch.setenv("OLLAMA_API_KEY", "wrong-token-0000000000")
    assert await run("models", "--json") == 1
    captured = capsys.readouterr()
    assert (
        captured.out == "" and "HTTP 401: unauthorized" in captured.err and "wrong-token" not in captured.err
    )


def test_a_subcommand_is_required() -> None:
    with pytest.raises(SystemExit):
        parse()
