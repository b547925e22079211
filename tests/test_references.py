"""Citations: every key a page cites is in book/references.bib, every entry there is cited, and a
citation of a missing key fails the strict book build (checked on a tiny scratch book)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from book_sources import BOOK, REPO, all_pages, line_of, rel
from conftest import jupyter_book_exe

BIB = BOOK / "references.bib"
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]*)`")


def bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf8"), flags=re.MULTILINE))


def citations() -> list[tuple[str, str]]:
    """(key, "file:line") of every {cite}, {cite:p}, {cite:t} ... on every page in _toc.yml."""
    out = []
    for path in all_pages():
        text = path.read_text(encoding="utf8")
        for m in CITE.finditer(text):
            for key in m.group(1).split(","):
                out.append((key.strip(), f"{rel(path)}:{line_of(text, m.start())}"))
    return out


def test_bibliography_parses():
    keys = bib_keys()
    assert len(keys) >= 5, f"{rel(BIB)} holds only {sorted(keys)}"


def test_every_citation_is_in_the_bibliography():
    keys = bib_keys()
    missing = [f"{where}: {key}" for key, where in citations() if key not in keys]
    assert not missing, f"cited keys that {rel(BIB)} lacks:\n  " + "\n  ".join(missing)


def test_every_bibliography_entry_is_cited():
    cited = {key for key, _ in citations()}
    unused = sorted(bib_keys() - cited)
    assert not unused, (
        f"entries of {rel(BIB)} that no page cites (cite them where the book draws on them, or "
        f"remove them): {', '.join(unused)}"
    )


def _scratch_book(tmp_path, body: str):
    """A two-page book with the project's _config.yml, extensions and bibliography."""
    root = tmp_path / "book_repo"
    (root / "book").mkdir(parents=True)
    shutil.copy2(REPO / "_config.yml", root / "_config.yml")
    for name in ("_ext", "_static"):
        if (BOOK / name).is_dir():
            shutil.copytree(BOOK / name, root / "book" / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(BIB, root / "book" / "references.bib")
    shutil.copy2(BOOK / "references.md", root / "book" / "references.md")
    (root / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: index\nchapters:\n  - file: references\n", encoding="utf8"
    )
    (root / "book" / "index.md").write_text(f"# Scratch\n\n{body}\n", encoding="utf8")
    return root


def _build(root):
    return subprocess.run(
        [jupyter_book_exe(), "build", "book/", "-W", "-n", "--keep-going"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_a_broken_citation_fails_the_strict_build(tmp_path):
    good = _build(_scratch_book(tmp_path / "good", "As {cite:t}`elhage2022toy` showed."))
    assert good.returncode == 0, (
        "the scratch book with a valid citation should build; its log:\n"
        + (good.stdout + good.stderr)[-4000:]
    )
    bad = _build(_scratch_book(tmp_path / "bad", "As {cite:t}`no-such-paper-2099` showed."))
    log = bad.stdout + bad.stderr
    assert bad.returncode != 0, "a citation of a missing key did not fail `jupyter-book build -W`"
    assert "no-such-paper-2099" in log, f"the build failed, but not on the missing key:\n{log[-4000:]}"
