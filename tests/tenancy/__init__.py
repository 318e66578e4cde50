"""Tenancy controls: named keys, BYOK credentials, SSRF guard, isolation."""
