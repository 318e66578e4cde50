"""Per-project BYOK provider credentials, encrypted at rest with Fernet."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from omnigate.store.database import Queryable
from omnigate.store.records import ProviderCredential, UnknownProjectError, now_ms

# Secrets shorter than this keep no visible tail (last4 would give away too much of them).
_MIN_LEN_FOR_LAST4 = 12


class SecretBox:
    """Symmetric encryption of secrets with one Fernet key."""

    __slots__ = ("_fernet",)

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ValueError(
                "cannot decrypt a stored credential: the secret key differs from the one that encrypted it"
            ) from None


def _check_fernet_key(key: bytes, source: str) -> bytes:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ValueError(
            f"invalid secret key from {source}: it must be a Fernet key (32 url-safe base64-encoded "
            "bytes, e.g. from `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`)"
        ) from None
    return key


def load_or_create_secret_key(settings_value: str | None, key_file: Path) -> bytes:
    """The configured key if given; else the one in `key_file`; else a new one written there (mode 0600)."""
    if settings_value:
        return _check_fernet_key(settings_value.strip().encode("ascii", "replace"), "settings")
    try:
        return _check_fernet_key(key_file.read_bytes().strip(), str(key_file))
    except FileNotFoundError:
        pass
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _check_fernet_key(key_file.read_bytes().strip(), str(key_file))
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def _last4(secret: str) -> str:
    return secret[-4:] if len(secret) >= _MIN_LEN_FOR_LAST4 else ""


def _meta(raw: str | None) -> dict[str, Any] | None:
    return None if raw is None else dict(orjson.loads(raw))


def _credential(row: Mapping[str, Any]) -> ProviderCredential:
    return ProviderCredential(
        project_id=row["project_id"],
        provider=row["provider"],
        last4=row["last4"],
        meta=_meta(row["meta"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


UPSERT_CREDENTIAL = """
INSERT INTO provider_credentials
    (project_id, provider, secret_ciphertext, last4, meta, created_at, updated_at)
SELECT p.id, :provider, :ciphertext, :last4, :meta, :now, :now
FROM projects p WHERE p.id = :project_id
ON CONFLICT (project_id, provider) DO UPDATE SET
    secret_ciphertext = excluded.secret_ciphertext,
    last4 = excluded.last4,
    meta = excluded.meta,
    updated_at = excluded.updated_at
RETURNING project_id, provider, last4, meta, created_at, updated_at
"""


async def set_credential(
    db: Queryable,
    box: SecretBox,
    project_id: str,
    provider: str,
    api_key: str,
    meta: Mapping[str, Any] | None = None,
) -> ProviderCredential:
    """Store (or replace) a project's key for a provider; raises UnknownProjectError for a missing project."""
    row = await db.fetch_one(
        UPSERT_CREDENTIAL,
        {
            "project_id": project_id,
            "provider": provider,
            "ciphertext": box.encrypt(api_key),
            "last4": _last4(api_key),
            "meta": None if meta is None else orjson.dumps(dict(meta)).decode(),
            "now": now_ms(),
        },
    )
    if row is None:
        raise UnknownProjectError(project_id)
    return _credential(row)


GET_CREDENTIAL_SECRET = """
SELECT secret_ciphertext, meta FROM provider_credentials
WHERE project_id = :project_id AND provider = :provider
"""


async def get_credential_secret(
    db: Queryable, box: SecretBox, project_id: str, provider: str
) -> tuple[str, dict[str, Any] | None] | None:
    """The decrypted key and meta of a project's provider credential, or None."""
    row = await db.fetch_one(GET_CREDENTIAL_SECRET, {"project_id": project_id, "provider": provider})
    if row is None:
        return None
    return box.decrypt(row["secret_ciphertext"]), _meta(row["meta"])


LIST_CREDENTIALS = """
SELECT project_id, provider, last4, meta, created_at, updated_at FROM provider_credentials
WHERE project_id = :project_id ORDER BY provider
"""


async def list_credentials(db: Queryable, project_id: str) -> list[ProviderCredential]:
    """A project's credentials, without secrets."""
    return [_credential(r) for r in await db.fetch_all(LIST_CREDENTIALS, {"project_id": project_id})]


DELETE_CREDENTIAL = """
DELETE FROM provider_credentials WHERE project_id = :project_id AND provider = :provider
RETURNING provider
"""


async def delete_credential(db: Queryable, project_id: str, provider: str) -> bool:
    """Delete a project's credential for a provider; False if there was none."""
    deleted = await db.fetch_val(DELETE_CREDENTIAL, {"project_id": project_id, "provider": provider})
    return deleted is not None
