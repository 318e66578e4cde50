"""Migrations: round trips on both backends, 0002 data surviving 0003, concurrent and crashed migrators."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omnigate.store import migrate
from omnigate.store.database import Database
from omnigate.store.keys import create_key, hash_key, list_keys, principal_for_hash, revoke_key
from omnigate.store.tenants import get_org, get_project

BACKENDS = ["sqlite", "postgresql"]

ALL = [
    "0001_initial",
    "0002_usage",
    "0003_multikey_monthly_meta",
    "0004_usage_rollups",
    "0005_usage_client_request_id",
]
# Python migrations (dialect-specific steps) roll back inside the same file.
PYTHON = ["0004_usage_rollups"]
both = pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)

# Raw SQL of the 0002 era (the store module only speaks the newest schema).
INSERT_ORG_0002 = """
INSERT INTO organizations (id, name, daily_budget_micros, created_at, updated_at)
VALUES ('org_old', 'Old Org', 1000000, 1, 1)
"""
INSERT_PROJECT_0002 = """
INSERT INTO projects (id, org_id, name, api_key_hash, api_key_prefix, daily_budget_micros, rpm, tpm,
                      created_at, updated_at)
VALUES ('proj_old', 'org_old', 'Old Project', :hash, 'og-OldKey12', NULL, 60, 1000, 2, 2)
"""
INSERT_CREDENTIAL_0002 = """
INSERT INTO provider_credentials (project_id, provider, secret_ciphertext, last4, created_at, updated_at)
VALUES ('proj_old', 'openai', 'cipher', 'abcd', 3, 3)
"""
PROJECT_KEY_0002 = "SELECT api_key_hash, api_key_prefix FROM projects WHERE id = 'proj_old'"
HAS_API_KEYS = "SELECT COUNT(*) FROM api_keys"


def _with_db(url: str) -> Database:
    return Database(url)


async def _columns(db: Database, table: str) -> set[str]:
    row = await db.fetch_one(f"SELECT * FROM {table} LIMIT 1")  # noqa: S608 - test-only, constant table
    if row is None:
        raise AssertionError(f"{table} is empty")
    return set(row)


def test_yoyo_url() -> None:
    assert (
        migrate.yoyo_url("postgresql://u@h:5432/d?min_size=1&max_size=4") == "postgresql+psycopg://u@h:5432/d"
    )
    assert (
        migrate.yoyo_url("postgres://u@h/d?sslmode=require") == "postgresql+psycopg://u@h/d?sslmode=require"
    )
    assert migrate.yoyo_url("sqlite:///./x/y.db") == "sqlite:///x/y.db"
    assert migrate.yoyo_url("sqlite:////abs/y.db") == "sqlite:////abs/y.db"
    with pytest.raises(ValueError):
        migrate.yoyo_url("sqlite:///:memory:")


def test_default_migrations_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OMNIGATE_MIGRATIONS_DIR", raising=False)
    found = migrate.default_migrations_dir()
    assert (found / "0001_initial.sql").is_file()
    monkeypatch.setenv("OMNIGATE_MIGRATIONS_DIR", str(tmp_path))
    assert migrate.default_migrations_dir() == tmp_path


def test_every_migration_has_a_rollback() -> None:
    folder = migrate.default_migrations_dir()
    ups = sorted(p for p in folder.glob("*.sql") if not p.name.endswith(".rollback.sql"))
    assert sorted([p.stem for p in ups] + [p.stem for p in folder.glob("*.py")]) == ALL
    assert [p.stem for p in folder.glob("*.py")] == PYTHON
    for p in ups:
        assert p.with_name(p.stem + ".rollback.sql").is_file()
        assert "%" not in p.read_text()


@both
def test_round_trip(fresh_url: str) -> None:
    assert migrate.status(fresh_url) == [(m, False) for m in ALL]
    assert migrate.upgrade(fresh_url) == ALL
    assert migrate.upgrade(fresh_url) == []
    assert migrate.status(fresh_url) == [(m, True) for m in ALL]
    assert migrate.downgrade(fresh_url) == ["0005_usage_client_request_id"]
    assert migrate.downgrade(fresh_url) == ["0004_usage_rollups"]
    assert migrate.downgrade(fresh_url, to="0002_usage") == ["0003_multikey_monthly_meta"]
    assert migrate.downgrade(fresh_url, to="0001_initial") == ["0002_usage"]
    assert migrate.status(fresh_url) == [
        ("0001_initial", True),
        ("0002_usage", False),
        (ALL[2], False),
        (ALL[3], False),
        (ALL[4], False),
    ]
    assert migrate.upgrade(fresh_url) == ALL[1:]
    with pytest.raises(ValueError, match="not applied"):
        migrate.downgrade(fresh_url, to="9999_nope")
    assert migrate.downgrade(fresh_url, to="0002_usage") == [ALL[4], ALL[3], ALL[2]]
    assert migrate.downgrade(fresh_url, to=migrate.BASE) == ["0002_usage", "0001_initial"]
    assert migrate.downgrade(fresh_url) == []
    assert migrate.upgrade(fresh_url) == ALL


@both
async def test_0002_data_still_authenticates_after_0003(fresh_url: str) -> None:
    migrate.upgrade(fresh_url)
    migrate.downgrade(fresh_url, to="0002_usage")
    old_plaintext = "og-legacyKeyFromTheOldSchema0000000000000000"
    db = _with_db(fresh_url)
    await db.connect()
    try:
        await db.execute(INSERT_ORG_0002)
        await db.execute(INSERT_PROJECT_0002, {"hash": hash_key(old_plaintext)})
        await db.execute(INSERT_CREDENTIAL_0002)
    finally:
        await db.disconnect()

    assert migrate.upgrade(fresh_url) == ALL[2:]
    await db.connect()
    try:
        principal = await principal_for_hash(db, hash_key(old_plaintext))
        assert principal is not None
        assert (principal.key_id, principal.project_id, principal.org_id) == (
            "key_proj_old",
            "proj_old",
            "org_old",
        )
        assert (principal.project_rpm, principal.project_tpm, principal.allowed_models) == (60, 1000, None)
        [key] = await list_keys(db, "proj_old")
        assert (key.name, key.prefix, key.created_at, key.revoked_at) == ("default", "og-OldKey12", 2, None)
        org = await get_org(db, "org_old")
        assert org is not None and org.daily_budget_micros == 1_000_000 and org.monthly_budget_micros is None
        project = await get_project(db, "proj_old")
        assert project is not None and project.monthly_budget_micros is None

        # Rollback keeps the oldest live key: revoke the old one, add a new one.
        new_key, new_plaintext = await create_key(db, "proj_old", "second")
        await revoke_key(db, "proj_old", "key_proj_old")
    finally:
        await db.disconnect()

    assert migrate.downgrade(fresh_url, to="0002_usage") == ALL[:1:-1]
    await db.connect()
    try:
        row = await db.fetch_one(PROJECT_KEY_0002)
        assert row == {"api_key_hash": hash_key(new_plaintext), "api_key_prefix": new_key.prefix}
        assert "meta" not in await _columns(db, "provider_credentials")
        assert "monthly_budget_micros" not in await _columns(db, "organizations")
    finally:
        await db.disconnect()

    assert migrate.upgrade(fresh_url) == ALL[2:]
    await db.connect()
    try:
        principal = await principal_for_hash(db, hash_key(new_plaintext))
        assert principal is not None and principal.project_id == "proj_old"
        assert await principal_for_hash(db, hash_key(old_plaintext)) is None
        assert "api_key_hash" not in await _columns(db, "projects")
    finally:
        await db.disconnect()


_MIGRATOR = """
import json, sys, time
from omnigate.store.migrate import upgrade
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start both at the same instant
print(json.dumps(upgrade(sys.argv[1], lock_timeout_s=30)))
"""


@both
def test_two_processes_migrate_at_once(fresh_url: str) -> None:
    start_at = str(time.time() + 1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATOR, fresh_url, start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(results, key=len) == [[], ALL]
    assert migrate.status(fresh_url) == [(m, True) for m in ALL]


_CRASH_HOLDING_LOCK = """
import os, sys
from yoyo import get_backend
from omnigate.store.migrate import yoyo_url
backend = get_backend(yoyo_url(sys.argv[1]))
backend.lock().__enter__()
os._exit(3)
"""


@both
def test_lock_left_by_a_crashed_migrator_is_broken(fresh_url: str) -> None:
    migrate.upgrade(fresh_url)
    migrate.downgrade(fresh_url)
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH_HOLDING_LOCK, fresh_url], capture_output=True, text=True
    )
    assert crashed.returncode == 3, crashed.stderr
    started = time.monotonic()
    assert migrate.upgrade(fresh_url, lock_timeout_s=2) == [ALL[-1]]
    assert time.monotonic() - started < 2


def test_sqlite_migrator_waits_for_the_file_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    with migrate._file_lock(tmp_path / "x.db.migrate-lock", 1), pytest.raises(TimeoutError):
        migrate.upgrade(url, lock_timeout_s=0.3)
    assert migrate.upgrade(url) == ALL
