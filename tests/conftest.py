"""Shared fixtures.

`built_book` builds the book once per test session, exactly as a reader would: it copies the
repository's files (tracked and untracked-but-not-ignored, symlinks kept) into a temporary
folder with no `_build`, and runs `jupyter-book build book/` there, verbatim.

Set TOY_BOOK_HTML=/path/to/_build/html to reuse a build you already have while iterating on
tests locally; CI never sets it, so CI always builds from scratch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser import browser, site  # noqa: F401  (the browser tests' fixtures, see tests/browser.py)

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BuiltBook:
    root: Path  # the temporary copy of the repository
    html: Path  # its _build/html
    log: str  # everything the build printed


def repo_files(repo: Path = REPO) -> list[str]:
    """Paths (relative to the repository) that a clean clone of the working tree would hold."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [p for p in out.split("\0") if p and ((repo / p).exists() or (repo / p).is_symlink())]


def copy_repo(dest: Path, repo: Path = REPO) -> Path:
    """Copy the working tree's files (not `_build`, not ignored files) to ``dest``."""
    for rel in repo_files(repo):
        src = repo / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, target)
    return dest


def jupyter_book_exe() -> str:
    """The `jupyter-book` command of the environment running the tests."""
    exe = Path(sys.executable).parent / "jupyter-book"
    return str(exe) if exe.exists() else "jupyter-book"


def build_book(root: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run `jupyter-book build book/` (plus ``extra`` flags) in ``root``."""
    return subprocess.run(
        [jupyter_book_exe(), "build", "book/", *extra],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=3600,
    )


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BuiltBook:
    reuse = os.environ.get("TOY_BOOK_HTML")
    if reuse:
        html = Path(reuse).resolve()
        return BuiltBook(root=html.parents[1], html=html, log="(reused build)")
    root = copy_repo(tmp_path_factory.mktemp("book_repo"))
    proc = build_book(root)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"`jupyter-book build book/` failed:\n{log[-6000:]}"
    return BuiltBook(root=root, html=root / "_build" / "html", log=log)


@pytest.fixture(scope="session")
def chapter(built_book):
    """``chapter(docname)``: the namespace of that chapter's code, run against the result cache
    of the book this session built (see tests/claims.py). The first call per chapter runs it."""
    from claims import run_chapter

    cache = built_book.root / "_build" / ".toy_lib_cache"

    def run(docname: str) -> dict:
        return run_chapter(docname, cache)

    return run
