"""BYOK credentials on both backends: encryption at rest, upsert, project scoping, key loading."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from omnigate.store.credentials import (
    SecretBox,
    delete_credential,
    get_credential_secret,
    list_credentials,
    load_or_create_secret_key,
    set_credential,
)
from omnigate.store.database import Database
from omnigate.store.records import UnknownProjectError
from omnigate.store.tenants import create_org, create_project

SECRET = "sk-live-0123456789abcdefWXYZ"
STORED = "SELECT secret_ciphertext, last4 FROM provider_credentials"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


async def _project(db: Database, name: str) -> str:
    org = await create_org(db, name)
    project, _, _ = await create_project(db, org.id, name)
    return project.id


def test_secret_box_round_trip(box: SecretBox) -> None:
    token = box.encrypt(SECRET)
    assert token != SECRET and SECRET not in token
    assert box.decrypt(token) == SECRET
    with pytest.raises(ValueError, match="secret key"):
        SecretBox(Fernet.generate_key()).decrypt(token)


def test_load_or_create_secret_key(tmp_path: Path) -> None:
    given = Fernet.generate_key()
    assert load_or_create_secret_key(given.decode(), tmp_path / "unused") == given
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ValueError, match="Fernet key") as info:
        load_or_create_secret_key("not-a-key", tmp_path / "unused")
    assert "not-a-key" not in str(info.value)

    key_file = tmp_path / "dir" / "secret.key"
    created = load_or_create_secret_key(None, key_file)
    Fernet(created)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_or_create_secret_key(None, key_file) == created
    assert load_or_create_secret_key("", key_file) == created

    key_file.write_text("garbage\n")
    with pytest.raises(ValueError, match="secret.key"):
        load_or_create_secret_key(None, key_file)


async def test_set_get_list_delete(db: Database, box: SecretBox) -> None:
    project_id = await _project(db, "a")
    cred = await set_credential(db, box, project_id, "openai", SECRET, {"org": "o-1"})
    assert (cred.project_id, cred.provider, cred.last4, cred.meta) == (
        project_id,
        "openai",
        "WXYZ",
        {"org": "o-1"},
    )
    assert await get_credential_secret(db, box, project_id, "openai") == (SECRET, {"org": "o-1"})

    replaced = await set_credential(db, box, project_id, "openai", "sk-new-9999999999991234")
    assert replaced.last4 == "1234" and replaced.meta is None
    assert replaced.created_at == cred.created_at and replaced.updated_at >= cred.updated_at
    assert await get_credential_secret(db, box, project_id, "openai") == ("sk-new-9999999999991234", None)

    azure = await set_credential(db, box, project_id, "azure", "short", {"endpoint": "https://x", "n": [1]})
    assert azure.last4 == ""
    assert [c.provider for c in await list_credentials(db, project_id)] == ["azure", "openai"]

    assert await delete_credential(db, project_id, "openai") is True
    assert await delete_credential(db, project_id, "openai") is False
    assert await get_credential_secret(db, box, project_id, "openai") is None
    with pytest.raises(UnknownProjectError):
        await set_credential(db, box, "proj_missing", "openai", SECRET)


async def test_ciphertext_in_db_is_not_plaintext(db: Database, box: SecretBox) -> None:
    project_id = await _project(db, "a")
    await set_credential(db, box, project_id, "openai", SECRET)
    [row] = await db.fetch_all(STORED)
    assert SECRET not in row["secret_ciphertext"] and SECRET[:-4] not in row["secret_ciphertext"]
    assert box.decrypt(row["secret_ciphertext"]) == SECRET


async def test_credentials_are_scoped_by_project(db: Database, box: SecretBox) -> None:
    a = await _project(db, "a")
    b = await _project(db, "b")
    await set_credential(db, box, a, "openai", SECRET)
    assert await get_credential_secret(db, box, b, "openai") is None
    assert await list_credentials(db, b) == []
    assert await delete_credential(db, b, "openai") is False
    assert await get_credential_secret(db, box, a, "openai") is not None
    assert await get_credential_secret(db, box, "' OR '1'='1", "openai") is None
    assert await list_credentials(db, "' OR ''='") == []
