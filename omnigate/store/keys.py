"""Project API keys: generation, hashing, CRUD scoped by project, and key-hash to principal lookup."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from omnigate.store.database import Queryable
from omnigate.store.records import ApiKey, Principal, UnknownProjectError, new_id, now_ms

KEY_PREFIX = "og-"
DISPLAY_PREFIX_LEN = 11


def generate_key() -> tuple[str, str, str]:
    """Return (plaintext, sha256 hex hash, display prefix) for a new key."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_key(plaintext), plaintext[:DISPLAY_PREFIX_LEN]


def hash_key(plaintext: str) -> str:
    """The stored form of a key: sha256 hex of its UTF-8 bytes."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _models_json(allowed_models: Sequence[str] | None) -> str | None:
    if allowed_models is None:
        return None
    if isinstance(allowed_models, str):
        raise TypeError("allowed_models must be a sequence of model names, not a string")
    return orjson.dumps(list(allowed_models)).decode()


def _models(raw: str | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(orjson.loads(raw))


def _key(row: Mapping[str, Any]) -> ApiKey:
    return ApiKey(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        prefix=row["prefix"],
        allowed_models=_models(row["allowed_models"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


INSERT_KEY = """
INSERT INTO api_keys
    (id, project_id, name, key_hash, prefix, allowed_models, created_at, last_used_at, revoked_at)
SELECT :id, p.id, :name, :key_hash, :prefix, :allowed_models, :created_at, NULL, NULL
FROM projects p WHERE p.id = :project_id
RETURNING id, project_id, name, prefix, allowed_models, created_at, last_used_at, revoked_at
"""


async def create_key(
    db: Queryable, project_id: str, name: str, allowed_models: Sequence[str] | None = None
) -> tuple[ApiKey, str]:
    """Create a key for a project; return it with its plaintext (shown once, never stored)."""
    plaintext, key_hash, prefix = generate_key()
    row = await db.fetch_one(
        INSERT_KEY,
        {
            "id": new_id("key"),
            "project_id": project_id,
            "name": name,
            "key_hash": key_hash,
            "prefix": prefix,
            "allowed_models": _models_json(allowed_models),
            "created_at": now_ms(),
        },
    )
    if row is None:
        raise UnknownProjectError(project_id)
    return _key(row), plaintext


LIST_KEYS = """
SELECT id, project_id, name, prefix, allowed_models, created_at, last_used_at, revoked_at
FROM api_keys WHERE project_id = :project_id
ORDER BY created_at, id
"""


async def list_keys(db: Queryable, project_id: str) -> list[ApiKey]:
    """All keys of a project, revoked ones included, oldest first."""
    return [_key(r) for r in await db.fetch_all(LIST_KEYS, {"project_id": project_id})]


REVOKE_KEY = """
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, :now)
WHERE id = :id AND project_id = :project_id
RETURNING id, project_id, name, prefix, allowed_models, created_at, last_used_at, revoked_at, key_hash
"""


async def revoke_key(db: Queryable, project_id: str, key_id: str) -> ApiKey | None:
    """Revoke a project's key (idempotent: the first revocation time stays); None if not that project's."""
    revoked = await revoke_key_with_hash(db, key_id, project_id=project_id)
    return None if revoked is None else revoked[0]


REVOKE_ANY_KEY = """
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, :now)
WHERE id = :id
RETURNING id, project_id, name, prefix, allowed_models, created_at, last_used_at, revoked_at, key_hash
"""


async def revoke_key_with_hash(
    db: Queryable, key_id: str, *, project_id: str | None
) -> tuple[ApiKey, str] | None:
    """Revoke a key and return it with its hash (what key caches are keyed by, for invalidation).

    ``project_id`` scopes the revocation to one project (a tenant revoking its own key); None is the
    operator's unscoped revocation. None when no such key (in that project) exists.
    """
    if project_id is None:
        row = await db.fetch_one(REVOKE_ANY_KEY, {"id": key_id, "now": now_ms()})
    else:
        row = await db.fetch_one(REVOKE_KEY, {"id": key_id, "project_id": project_id, "now": now_ms()})
    return None if row is None else (_key(row), row["key_hash"])


PRINCIPAL_FOR_HASH = """
SELECT k.id AS key_id, k.project_id AS project_id, p.org_id AS org_id, k.allowed_models AS allowed_models,
       p.rpm AS project_rpm, p.tpm AS project_tpm,
       o.daily_budget_micros AS org_daily_budget_micros, o.monthly_budget_micros AS org_monthly_budget_micros,
       p.daily_budget_micros AS project_daily_budget_micros,
       p.monthly_budget_micros AS project_monthly_budget_micros
FROM api_keys k JOIN projects p ON p.id = k.project_id JOIN organizations o ON o.id = p.org_id
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL
"""


async def principal_for_hash(db: Queryable, key_hash: str) -> Principal | None:
    """The principal of a live key, by the key's hash; None for unknown or revoked keys."""
    row = await db.fetch_one(PRINCIPAL_FOR_HASH, {"key_hash": key_hash})
    if row is None:
        return None
    return Principal(
        key_id=row["key_id"],
        project_id=row["project_id"],
        org_id=row["org_id"],
        allowed_models=_models(row["allowed_models"]),
        project_rpm=row["project_rpm"],
        project_tpm=row["project_tpm"],
        org_daily_budget_micros=row["org_daily_budget_micros"],
        org_monthly_budget_micros=row["org_monthly_budget_micros"],
        project_daily_budget_micros=row["project_daily_budget_micros"],
        project_monthly_budget_micros=row["project_monthly_budget_micros"],
    )


TOUCH_LAST_USED = """
UPDATE api_keys SET last_used_at = :used_at
WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :used_at)
"""


async def touch_last_used(db: Queryable, used: Mapping[str, int]) -> None:
    """Record last-use times (key id -> epoch ms) for many keys in one transaction; never moves back."""
    if not used:
        return
    rows = [{"id": key_id, "used_at": used_at} for key_id, used_at in sorted(used.items())]
    async with db.transaction() as tx:
        await tx.execute_many(TOUCH_LAST_USED, rows)
