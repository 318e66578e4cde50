"""Schema migrations with yoyo: upgrade, downgrade and status, safe when several processes run at once."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from yoyo import get_backend, read_migrations

from omnigate.store.database import parse_database_url

# Key of the PostgreSQL session-level advisory lock that serialises migrators ("omnimigr").
ADVISORY_LOCK_KEY = 0x6F6D6E696D696772
# A downgrade target meaning "roll back every migration".
BASE = "base"
# `databases` pool options that the sync drivers do not understand.
_POOL_OPTIONS = frozenset({"min_size", "max_size"})

_TRY_ADVISORY_LOCK = "SELECT pg_try_advisory_lock(%(key)s)"
_ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"


def _strip_pool_options(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _POOL_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(query)))


def yoyo_url(database_url: str) -> str:
    """Map omnigate's database URL to the scheme yoyo's sync drivers understand."""
    dialect, _, sqlite_path = parse_database_url(database_url)
    if dialect == "postgresql":
        return "postgresql+psycopg://" + _strip_pool_options(database_url).split("://", 1)[1]
    if sqlite_path is None:
        raise ValueError("cannot migrate an in-memory SQLite database")
    return "sqlite:///" + str(sqlite_path)


def _psycopg_conninfo(database_url: str) -> str:
    rest = _strip_pool_options(database_url).split("://", 1)[1]
    return "postgresql://" + rest


def default_migrations_dir() -> Path:
    """The bundled migrations: $OMNIGATE_MIGRATIONS_DIR, the source checkout's, or the installed copy."""
    env = os.environ.get("OMNIGATE_MIGRATIONS_DIR")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    checkout = repo_root / "migrations"
    if checkout.is_dir() and (repo_root / "pyproject.toml").is_file():
        return checkout
    return Path(sys.prefix) / "share" / "omnigate" / "migrations"


def _read(extra_dirs: Sequence[str | Path]) -> Any:
    dirs = [default_migrations_dir(), *(Path(d) for d in extra_dirs)]
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"migrations directory not found: {d}")
    return read_migrations(*(str(d) for d in dirs))


@contextmanager
def _pg_advisory_lock(database_url: str, timeout_s: float) -> Iterator[None]:
    """Hold a server-side lock that the server drops by itself if this process dies."""
    with psycopg.connect(_psycopg_conninfo(database_url), autocommit=True) as conn:
        deadline = time.monotonic() + timeout_s
        while not conn.execute(_TRY_ADVISORY_LOCK, {"key": ADVISORY_LOCK_KEY}).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise TimeoutError(f"another migrator held the database lock for over {timeout_s:g}s")
            time.sleep(0.2)
        try:
            yield
        finally:
            conn.execute(_ADVISORY_UNLOCK, {"key": ADVISORY_LOCK_KEY})


@contextmanager
def _file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    """An flock on a file beside the SQLite database; the kernel drops it if this process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another migrator held {path} for over {timeout_s:g}s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _exclusive_backend(database_url: str, timeout_s: float) -> Iterator[Any]:
    """A yoyo backend, opened only once this process is the one live migrator."""
    dialect, _, sqlite_path = parse_database_url(database_url)
    if dialect == "postgresql":
        outer = _pg_advisory_lock(database_url, timeout_s)
    else:
        if sqlite_path is None:
            raise ValueError("cannot migrate an in-memory SQLite database")
        outer = _file_lock(sqlite_path.with_name(sqlite_path.name + ".migrate-lock"), timeout_s)
    with outer, get_backend(yoyo_url(database_url)) as backend:
        # Any yoyo lock row left now belongs to a migrator that crashed: we hold the outer lock.
        backend.break_lock()
        yield backend


def upgrade(
    database_url: str, extra_dirs: Sequence[str | Path] = (), lock_timeout_s: float = 60
) -> list[str]:
    """Apply every pending migration; return the ids applied (empty if already current)."""
    migrations = _read(extra_dirs)
    with _exclusive_backend(database_url, lock_timeout_s) as backend, backend.lock(timeout=lock_timeout_s):
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    return [m.id for m in todo]


def downgrade(
    database_url: str,
    to: str | None = None,
    extra_dirs: Sequence[str | Path] = (),
    lock_timeout_s: float = 60,
) -> list[str]:
    """Roll back the latest migration (`to=None`), everything after revision `to`, or all (`to="base"`)."""
    migrations = _read(extra_dirs)
    with _exclusive_backend(database_url, lock_timeout_s) as backend, backend.lock(timeout=lock_timeout_s):
        applied = list(backend.to_rollback(migrations))  # newest first
        if to is None:
            todo = applied[:1]
        elif to == BASE:
            todo = applied
        else:
            ids = [m.id for m in applied]
            if to not in ids:
                raise ValueError(f"revision {to!r} is not applied")
            todo = applied[: ids.index(to)]
        backend.rollback_migrations(migrations.__class__(todo))
    return [m.id for m in todo]


def status(database_url: str, extra_dirs: Sequence[str | Path] = ()) -> list[tuple[str, bool]]:
    """Every known migration id, in order, with whether it is applied."""
    migrations = _read(extra_dirs)
    with _exclusive_backend(database_url, 60) as backend:
        applied = set(backend.get_applied_migration_hashes())
        return [(m.id, m.hash in applied) for m in migrations]
