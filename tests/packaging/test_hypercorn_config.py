"""docker/hypercorn.toml: the values the container's hypercorn starts from (SIGTERM: test_graceful_shutdown)."""

from __future__ import annotations

import tomllib

from tests.packaging.conftest import DOCKER

CONFIG = DOCKER / "hypercorn.toml"


def test_config_values() -> None:
    config = tomllib.loads(CONFIG.read_text())
    assert config["graceful_timeout"] >= 60, "LLM streams run for minutes: a short grace truncates them"
    assert config["worker_class"] == "uvloop" and config["bind"] == ["0.0.0.0:8080"]
    assert config["keep_alive_timeout"] > 60  # outlive a load balancer's usual 60 s idle timeout
