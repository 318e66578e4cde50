"""Settings: defaults, parsing, validation in one pass, .env files, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnigate.settings import ENVIRONMENT, Settings, SettingsError, parse_settings


def test_defaults_are_the_embedded_mode() -> None:
    settings = parse_settings({})
    assert settings.database_url == "sqlite:///./omnigate.db" and settings.redis_url is None
    assert settings.sqlite_path == Path("./omnigate.db")
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8080, 1)
    assert (settings.retry_max_attempts, settings.retry_base_delay_ms, settings.retry_max_delay_ms) == (
        3,
        250,
        8000,
    )
    assert settings.max_request_bytes == 10 * 1024 * 1024


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(
            {
                "PORT": "0",
                "WORKERS": "two",
                "LOG_LEVEL": "loud",
                "RESPONSE_CACHE_ENABLED": "maybe",
                "REDIS_URL": "http://x",
                "CIRCUIT_BREAKER_BACKEND": "redis",
            }
        )
    problems = caught.value.problems
    assert sorted(p.split(":")[0] for p in problems) == [
        "LOG_LEVEL",
        "PORT",
        "REDIS_URL",
        "RESPONSE_CACHE_ENABLED",
        "WORKERS",
    ], problems


def test_production_requires_a_secret_key() -> None:
    with pytest.raises(SettingsError, match="OMNIGATE_SECRET_KEY"):
        parse_settings({"DATABASE_URL": "postgresql://127.0.0.1/x"})
    assert (
        parse_settings({"DATABASE_URL": "postgresql://127.0.0.1/x", "OMNIGATE_SECRET_KEY": "k"}).secret_key
        == "k"
    )


def test_lists_and_booleans() -> None:
    settings = parse_settings({"OMNIGATE_BLOCK_PLUGINS": " retry, cache ,", "RESPONSE_CACHE_ENABLED": "TRUE"})
    assert settings.block_plugins == ("retry", "cache") and settings.response_cache_enabled is True
    assert parse_settings({"LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9000\nHOST=0.0.0.0\n# comment\nOPENAI_API_KEY=sk-from-file\n")
    settings = Settings.from_env({"PORT": "9100"}, env_file=str(env_file))
    assert settings.port == 9100 and settings.host == "0.0.0.0" and settings.openai_api_key == "sk-from-file"


def test_secrets_stay_out_of_repr() -> None:
    settings = parse_settings(
        {"ADMIN_API_KEY": "adm-123", "OPENAI_API_KEY": "sk-abc", "OMNIGATE_SECRET_KEY": "fern"}
    )
    assert "adm-123" not in repr(settings) and "sk-abc" not in repr(settings) and "fern" not in repr(settings)


def test_env_example_documents_every_variable() -> None:
    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    for name in ENVIRONMENT:
        assert f"{name}=" in example, f".env.example lacks {name}"
