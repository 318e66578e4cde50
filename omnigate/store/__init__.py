"""Persistent storage: the database handle, migrations, tenants, API keys and BYOK credentials."""

from omnigate.store.database import Database, Queryable, Transaction
from omnigate.store.records import (
    ApiKey,
    Organization,
    Principal,
    Project,
    ProviderCredential,
    UnknownOrganizationError,
    UnknownProjectError,
)

__all__ = [
    "ApiKey",
    "Database",
    "Organization",
    "Principal",
    "Project",
    "ProviderCredential",
    "Queryable",
    "Transaction",
    "UnknownOrganizationError",
    "UnknownProjectError",
]
