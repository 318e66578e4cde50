"""`key create|list|revoke` and `project credential set|list|delete` in real processes (embedded default)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_cli import cli, cli_json


def test_key_commands(tmp_path: Path) -> None:
    org = cli_json(tmp_path, "org", "create", "Acme")
    project = cli_json(tmp_path, "project", "create", "--org", org["id"], "web")
    created = cli_json(
        tmp_path,
        "key",
        "create",
        "--project",
        project["id"],
        "ci",
        "--allowed-models",
        "gpt-4o-mini, claude-x",
    )
    assert created["key"].startswith("og-") and created["allowed_models"] == ["gpt-4o-mini", "claude-x"]
    listed = cli_json(tmp_path, "key", "list", "--project", project["id"])
    assert [k["name"] for k in listed] == ["default", "ci"] and created["key"] not in json.dumps(listed)
    revoked = cli_json(tmp_path, "key", "revoke", created["id"])
    assert revoked["id"] == created["id"] and revoked["revoked_at"] is not None
    table = cli(tmp_path, "key", "list", "--project", project["id"]).stdout
    assert "REVOKED_AT" in table and created["id"] in table

    missing = cli(tmp_path, "key", "revoke", "key_nope", check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == "error: no key 'key_nope'"
    no_project = cli(tmp_path, "key", "list", "--project", "proj_nope", check=False)
    assert no_project.returncode == 1 and "no project" in no_project.stderr
    empty = cli(
        tmp_path, "key", "create", "--project", project["id"], "x", "--allowed-models", ",", check=False
    )
    assert empty.returncode == 1 and "allowed_models" in empty.stderr


def test_project_credential_commands(tmp_path: Path) -> None:
    org = cli_json(tmp_path, "org", "create", "Acme")
    project = cli_json(tmp_path, "project", "create", "--org", org["id"], "web")["id"]
    meta = json.dumps({"endpoint": "https://20.42.0.1", "deployment": "chat", "api_version": "2024-10-21"})
    secret = "azure-secret-from-stdin-9876"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "OMNIGATE_"))
    }
    stored = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnigate",
            "project",
            "credential",
            "set",
            project,
            "--provider",
            "azure",
            "--api-key",
            "-",
            "--meta",
            meta,
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(stored.stdout)["last4"] == "9876" and secret not in stored.stdout

    listed = cli_json(tmp_path, "project", "credential", "list", project)
    assert [(c["provider"], c["last4"], c["meta"]["deployment"]) for c in listed] == [
        ("azure", "9876", "chat")
    ]

    unsafe = cli(
        tmp_path,
        "project",
        "credential",
        "set",
        project,
        "--provider",
        "azure",
        "--api-key",
        "k" * 20,
        "--meta",
        json.dumps({"endpoint": "https://169.254.169.254"}),
        check=False,
    )
    assert unsafe.returncode == 1 and "meta.endpoint" in unsafe.stderr and "metadata" in unsafe.stderr

    deleted = cli_json(tmp_path, "project", "credential", "delete", project, "--provider", "azure")
    assert deleted == {"object": "credential", "provider": "azure", "deleted": True}
    again = cli(tmp_path, "project", "credential", "delete", project, "--provider", "azure", check=False)
    assert again.returncode == 1 and "no azure credential" in again.stderr
