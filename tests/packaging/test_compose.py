"""docker/docker-compose.yml: its structure, and every variable of .env.example passed through from .env."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.packaging.conftest import DOCKER, ENV_EXAMPLE, ROOT, env_example_names

COMPOSE = DOCKER / "docker-compose.yml"
GATEWAY_SERVICES = ("omnigate", "migrate")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def passes_through(value: Any, name: str) -> bool:
    """``${NAME}``, ``${NAME:-default}`` or ``${NAME:?error}``: the value comes from .env / the environment."""
    return (
        isinstance(value, str)
        and re.fullmatch(r"\$\{" + name + r"(?:(?::?[-?]).*)?\}", value, re.DOTALL) is not None
    )


def default_of(value: str) -> str:
    return value.split(":-", 1)[1][:-1]


def test_env_example_is_parsed() -> None:
    names = env_example_names()
    assert len(names) == len(set(names)) >= 40
    assert {"DATABASE_URL", "REDIS_URL", "OMNIGATE_SECRET_KEY", "RATE_LIMIT_FAIL_OPEN"} <= set(names)


@pytest.mark.parametrize("service", GATEWAY_SERVICES)
def test_every_env_example_variable_is_passed_through(compose: dict[str, Any], service: str) -> None:
    environment = compose["services"][service]["environment"]
    assert isinstance(environment, dict), "use the mapping form so each variable is explicit"
    missing = [name for name in env_example_names() if name not in environment]
    assert missing == [], f"{service} does not pass through {missing}"
    wrong = [name for name, value in environment.items() if not passes_through(value, name)]
    assert wrong == [], f"{service}: these are not ${{NAME...}} pass-throughs: {wrong}"


def test_services_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"omnigate", "migrate", "postgres", "redis"} <= set(services)
    gateway = services["omnigate"]
    assert gateway["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["migrate"]["command"] == ["omnigate-gateway", "db", "upgrade"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("postgres", "redis"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) >= 2
        assert any(
            volume.endswith(("/var/lib/postgresql/data", "/data")) for volume in services[name]["volumes"]
        )
    assert "--appendonly" in services["redis"]["command"], "budget counters must survive a Redis restart"
    declared = set(compose["volumes"])
    used = {volume.split(":", 1)[0] for service in services.values() for volume in service.get("volumes", [])}
    assert used <= declared


def test_gateway_image_is_built_from_the_repository(compose: dict[str, Any]) -> None:
    for name in GATEWAY_SERVICES:
        service = compose["services"][name]
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT and (context / build["dockerfile"]).is_file()
        assert service["image"] == compose["services"]["omnigate"]["image"]


def test_defaults_point_at_the_bundled_services(compose: dict[str, Any]) -> None:
    environment = compose["services"]["omnigate"]["environment"]
    database = default_of(environment["DATABASE_URL"])
    assert database.startswith("postgresql://") and "@postgres:5432/" in database
    assert default_of(environment["REDIS_URL"]) == "redis://redis:6379/0"
    # Production mode needs the key that encrypts BYOK secrets: compose refuses to start without it.
    assert environment["OMNIGATE_SECRET_KEY"].startswith("${OMNIGATE_SECRET_KEY:?")
    port = default_of(environment["PORT"])
    (mapping,) = compose["services"]["omnigate"]["ports"]
    assert mapping.endswith(":${PORT:-" + port + "}"), "publish the port the container listens on"


def test_stop_grace_period_outlasts_the_graceful_timeout(compose: dict[str, Any]) -> None:
    """Above the image's grace (what an empty GRACEFUL_TIMEOUT_S gives) and .env.example's."""
    grace = compose["services"]["omnigate"]["stop_grace_period"]
    match = re.fullmatch(r"(\d+)s", grace)
    assert match is not None, grace
    assert compose["services"]["omnigate"]["environment"]["GRACEFUL_TIMEOUT_S"] == "${GRACEFUL_TIMEOUT_S:-}"
    dockerfile = (DOCKER / "Dockerfile").read_text()
    image_default = re.search(r"GRACEFUL_TIMEOUT_S=(\d+)", dockerfile)
    assert image_default is not None
    assert "${GRACEFUL_TIMEOUT_S:-" + image_default.group(1) + "}" in dockerfile
    example = re.search(r"^GRACEFUL_TIMEOUT_S=([\d.]+)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert example is not None
    assert int(match.group(1)) > max(int(image_default.group(1)), float(example.group(1)))
