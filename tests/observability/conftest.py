"""Observability fixtures: the store's migrated `db`, and the chat gateway wired to the fake upstreams."""

from __future__ import annotations

from tests.chat.conftest import chat_env, fakes, gateway
from tests.store.conftest import db, migrated_urls, pg_databases, postgres_available

__all__ = ["chat_env", "db", "fakes", "gateway", "migrated_urls", "pg_databases", "postgres_available"]
