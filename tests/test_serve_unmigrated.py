"""`serve` on a production database that is behind the migrations stops with one line naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import POSTGRES_ADMIN_URL, SECRET_KEY


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    name = f"omnigate_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_serve_refuses_an_unmigrated_database_without_a_traceback(empty_postgres: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": empty_postgres,
        "OMNIGATE_SECRET_KEY": SECRET_KEY,
        "OMNIGATE_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "omnigate", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "run 'omnigate-gateway db upgrade' first" in result.stderr
    assert "Traceback" not in result.stderr
