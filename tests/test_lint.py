"""ruff, as CI runs it: the lint (`ruff check`) and the format check (`ruff format --check`)
over the repository, with the settings in pyproject.toml. The pre-commit hooks run the same."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def ruff() -> str:
    exe = Path(sys.executable).parent / "ruff"
    if exe.exists():
        return str(exe)
    found = shutil.which("ruff")
    if not found:
        pytest.fail("ruff is not installed: `pip install -r requirements.txt` installs it")
    return found


def test_ruff_check_is_clean():
    proc = subprocess.run(
        [ruff(), "check", "--output-format", "concise", "."], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, (
        f"`ruff check` found problems (`ruff check --fix .` fixes most):\n{proc.stdout}"
    )


def test_ruff_format_is_clean():
    proc = subprocess.run([ruff(), "format", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"`ruff format --check` wants to reformat files (run `ruff format .`):\n{proc.stdout}{proc.stderr}"
    )
