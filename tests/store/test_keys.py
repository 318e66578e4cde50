"""API keys on both backends: creation, listing, revocation, principals, last-used batching."""

from __future__ import annotations

import hashlib

import pytest

from omnigate.store.database import Database
from omnigate.store.keys import (
    create_key,
    generate_key,
    hash_key,
    list_keys,
    principal_for_hash,
    revoke_key,
    touch_last_used,
)
from omnigate.store.records import ApiKey, UnknownProjectError
from omnigate.store.tenants import create_org, create_project

KEY_COLUMNS = "SELECT * FROM api_keys"


async def _project(db: Database, name: str = "p") -> tuple[str, ApiKey, str]:
    org = await create_org(db, "org-" + name)
    project, key, plaintext = await create_project(db, org.id, name, rpm=10)
    return project.id, key, plaintext


def test_generate_key() -> None:
    plaintext, key_hash, prefix = generate_key()
    assert plaintext.startswith("og-") and len(plaintext) == 3 + 43
    assert key_hash == hashlib.sha256(plaintext.encode()).hexdigest() == hash_key(plaintext)
    assert prefix == plaintext[:11] and len(prefix) == 11
    assert generate_key()[0] != plaintext


async def test_create_and_list_keys(db: Database) -> None:
    project_id, default, _ = await _project(db)
    key, plaintext = await create_key(db, project_id, "ci", allowed_models=["gpt-4o", "claude-x"])
    assert key.id.startswith("key_") and key.allowed_models == ("gpt-4o", "claude-x")
    assert (key.last_used_at, key.revoked_at) == (None, None)
    assert sorted(await list_keys(db, project_id), key=lambda k: k.id) == sorted(
        [default, key], key=lambda k: k.id
    )
    principal = await principal_for_hash(db, hash_key(plaintext))
    assert principal is not None
    assert (principal.key_id, principal.project_id, principal.allowed_models) == (
        key.id,
        project_id,
        key.allowed_models,
    )
    assert principal.project_rpm == 10 and principal.project_tpm is None
    empty, _ = await create_key(db, project_id, "none", allowed_models=[])
    assert empty.allowed_models == ()
    with pytest.raises(TypeError):
        await create_key(db, project_id, "bad", allowed_models="gpt-4o")
    with pytest.raises(UnknownProjectError):
        await create_key(db, "proj_missing", "x")


async def test_plaintext_is_never_stored(db: Database) -> None:
    project_id, _, plaintext = await _project(db)
    _, second = await create_key(db, project_id, "second")
    for row in await db.fetch_all(KEY_COLUMNS):
        for value in row.values():
            assert plaintext not in str(value) and second not in str(value)


async def test_revoked_key_has_no_principal(db: Database) -> None:
    project_id, key, plaintext = await _project(db)
    assert await principal_for_hash(db, hash_key(plaintext)) is not None
    revoked = await revoke_key(db, project_id, key.id)
    assert revoked is not None and revoked.revoked_at is not None
    assert await principal_for_hash(db, hash_key(plaintext)) is None
    again = await revoke_key(db, project_id, key.id)
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert await principal_for_hash(db, hash_key("og-unknown")) is None


async def test_revoke_is_scoped_by_project(db: Database) -> None:
    a_id, a_key, a_plain = await _project(db, "a")
    b_id, _, _ = await _project(db, "b")
    assert await revoke_key(db, b_id, a_key.id) is None
    assert await revoke_key(db, "' OR '1'='1", a_key.id) is None
    assert await principal_for_hash(db, hash_key(a_plain)) is not None
    assert [k.id for k in await list_keys(db, b_id)] != [a_key.id]
    assert await list_keys(db, "' OR '1'='1") == []


async def test_touch_last_used_batches_and_never_goes_back(db: Database) -> None:
    project_id, k1, _ = await _project(db)
    k2, _ = await create_key(db, project_id, "two")
    await touch_last_used(db, {k1.id: 1_000, k2.id: 2_000, "key_missing": 5})
    await touch_last_used(db, {k1.id: 500})
    await touch_last_used(db, {})
    used = {k.id: k.last_used_at for k in await list_keys(db, project_id)}
    assert used == {k1.id: 1_000, k2.id: 2_000}
    await touch_last_used(db, {k1.id: 3_000})
    used = {k.id: k.last_used_at for k in await list_keys(db, project_id)}
    assert used == {k1.id: 3_000, k2.id: 2_000}


async def test_many_keys_touched_at_once(db: Database) -> None:
    project_id, _, _ = await _project(db)
    keys = [(await create_key(db, project_id, f"k{i}"))[0] for i in range(30)]
    await touch_last_used(db, {k.id: 10 + i for i, k in enumerate(keys)})
    listed = {k.id: k.last_used_at for k in await list_keys(db, project_id)}
    assert all(listed[k.id] == 10 + i for i, k in enumerate(keys))
