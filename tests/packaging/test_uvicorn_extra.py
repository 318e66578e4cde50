"""uvicorn is an optional extra: `serve --server uvicorn` without it says what to install, before starting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from omnigate.cli import main


@pytest.mark.parametrize("absent", ["uvicorn", "httptools"])
def test_serve_under_uvicorn_without_the_extra_names_it(
    absent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "omnigate.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setitem(sys.modules, absent, None)  # what an environment without the package looks like
    assert main(["serve", "--server", "uvicorn", "--port", "1"]) == 1
    message = capsys.readouterr().err
    assert f"--server uvicorn needs {absent}" in message and "omnigate[uvicorn]" in message
    assert not database.exists(), "nothing starts (not even the migrations) without the server"


def test_an_unknown_server_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--server", "gunicorn"])
    assert exited.value.code == 2 and "invalid choice: 'gunicorn'" in capsys.readouterr().err
