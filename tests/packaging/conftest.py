"""Paths of the packaging files, and `.env.example`'s variable names."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
ENV_EXAMPLE = ROOT / ".env.example"


def env_example_names() -> list[str]:
    """Every `NAME=` assignment in .env.example (comments skipped), in file order."""
    names = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.append(match.group(1))
    return names
