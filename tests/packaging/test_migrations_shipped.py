"""Every migration file is in the wheel's data files, so an installed gateway migrates as a checkout does."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_migration_file_matches_a_data_files_pattern() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["data-files"]["share/omnigate/migrations"]
    files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "migrations").iterdir() if p.is_file())
    assert files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert missing == []
