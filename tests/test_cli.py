"""The CLI end to end in real processes: embedded default, tenancy commands, db commands, serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "OMNIGATE_"))
    }
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "omnigate", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def cli_json(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return json.loads(cli(cwd, *args, "--json", env=env).stdout)


def test_embedded_default_org_project_and_lists(tmp_path: Path) -> None:
    org = cli_json(tmp_path, "org", "create", "Acme", "--daily-budget", "5", "--monthly-budget", "100")
    assert org["name"] == "Acme" and org["daily_budget_usd"] == 5 and org["monthly_budget_usd"] == 100
    assert (tmp_path / "omnigate.db").exists(), "the embedded default is ./omnigate.db"

    project = cli_json(tmp_path, "project", "create", "--org", org["id"], "web", "--rpm", "60")
    assert project["api_key"].startswith("og-") and project["org_id"] == org["id"] and project["rpm"] == 60

    assert [o["id"] for o in cli_json(tmp_path, "org", "list")] == [org["id"]]
    assert [p["id"] for p in cli_json(tmp_path, "project", "list", "--org", org["id"])] == [project["id"]]
    assert cli_json(tmp_path, "project", "show", project["id"])["name"] == "web"

    updated = cli_json(tmp_path, "org", "update", org["id"], "--daily-budget", "none", "--name", "Acme 2")
    assert (
        updated["daily_budget_usd"] is None
        and updated["monthly_budget_usd"] == 100
        and updated["name"] == "Acme 2"
    )
    updated = cli_json(tmp_path, "project", "update", project["id"], "--tpm", "1000")
    assert updated["tpm"] == 1000 and updated["rpm"] == 60

    table = cli(tmp_path, "org", "list").stdout
    assert "ID" in table and org["id"] in table


def test_cli_errors_are_one_line_and_nonzero(tmp_path: Path) -> None:
    missing = cli(tmp_path, "org", "show", "org_nope", check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == "error: no organization 'org_nope'"
    bad_budget = cli(tmp_path, "org", "create", "X", "--daily-budget", "-3", check=False)
    assert bad_budget.returncode == 1 and "must not be negative" in bad_budget.stderr
    no_org = cli(tmp_path, "project", "create", "--org", "org_nope", "p", check=False)
    assert no_org.returncode == 1 and "no organization" in no_org.stderr


def test_config_check_reports_each_problem_on_its_own_line(tmp_path: Path) -> None:
    ok = cli_json(tmp_path, "config-check")
    assert ok["ok"] is True and ok["database"] == "sqlite" and ok["state"] == "memory"
    bad = cli(
        tmp_path,
        "config-check",
        env={
            "PORT": "eighty",
            "LOG_FORMAT": "xml",
            "DATABASE_URL": "postgresql://h/db",
            "OPENAI_API_KEY": "sk-secret-1",
        },
        check=False,
    )
    lines = bad.stdout.strip().splitlines()
    assert bad.returncode == 1 and len(lines) == 3
    assert any(line.startswith("PORT:") for line in lines) and any(
        line.startswith("LOG_FORMAT:") for line in lines
    )
    assert any(line.startswith("OMNIGATE_SECRET_KEY:") for line in lines)
    assert "sk-secret-1" not in bad.stdout + bad.stderr


def test_version_and_plugins(tmp_path: Path) -> None:
    from omnigate import __version__

    assert cli_json(tmp_path, "version")["version"] == __version__
    plugins = {p["name"]: p for p in cli_json(tmp_path, "plugins")}
    assert {"cli-serve", "cli-db", "cli-info", "cli-tenants"} <= set(plugins)
    assert plugins["cli-db"]["hooks"] == ["omnigate_register_commands"]


def test_db_commands_round_trip(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    applied = cli_json(tmp_path, "db", "upgrade", env=env)["applied"]
    assert applied == [
        "0001_initial",
        "0002_usage",
        "0003_multikey_monthly_meta",
        "0004_usage_rollups",
        "0005_usage_client_request_id",
    ]
    assert all(row["applied"] for row in cli_json(tmp_path, "db", "status", env=env))
    assert cli_json(tmp_path, "db", "downgrade", env=env)["rolled_back"] == ["0005_usage_client_request_id"]
    assert cli_json(tmp_path, "db", "downgrade", "--to", "0001_initial", env=env)["rolled_back"] == [
        "0004_usage_rollups",
        "0003_multikey_monthly_meta",
        "0002_usage",
    ]
    assert cli_json(tmp_path, "db", "upgrade", env=env)["applied"] == [
        "0002_usage",
        "0003_multikey_monthly_meta",
        "0004_usage_rollups",
        "0005_usage_client_request_id",
    ]
    assert cli_json(tmp_path, "db", "upgrade", env=env)["applied"] == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early: {process.stderr.read() if process.stderr else ''}")
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve did not become ready")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_embedded_default_then_authenticate_with_a_cli_key(tmp_path: Path, workers: str) -> None:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "OMNIGATE_"))
    }
    env.update({"ADMIN_API_KEY": ADMIN_KEY, "LOG_FORMAT": "json"})
    process = subprocess.Popen(
        [sys.executable, "-m", "omnigate", "serve", "--port", str(port), "--workers", workers],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        org = cli_json(tmp_path, "org", "create", "Acme")
        key = cli_json(tmp_path, "project", "create", "--org", org["id"], "web")["api_key"]
        me = httpx.get(base + "/v1/me", headers={"authorization": f"Bearer {key}"}, timeout=5)
        assert me.status_code == 200 and me.json()["org_id"] == org["id"]
        assert (
            httpx.get(base + "/v1/me", headers={"authorization": "Bearer og-nope"}, timeout=5).status_code
            == 401
        )
        version = httpx.get(base + "/version", timeout=5)
        assert version.headers["x-request-id"].startswith("req_")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert key not in stderr, "the plaintext key must never be logged"
