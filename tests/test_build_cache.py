"""The book's execution cache follows toy_lib: a library edit re-executes the chapters, nothing
else does (book/_ext/toy_lib_cache.py).

Three builds of a temporary copy of the repository whose table of contents holds one tiny
notebook page, ``cache_probe``, which prints a fresh random token each time it is executed:

1. a clean build executes it;
2. after edits to a file outside the library and to the page's prose, the rebuild re-reads the
   page but takes its outputs from the cache (same token);
3. after a comment is appended to a toy_lib file (the page itself unchanged), the rebuild
   executes it again (new token).

The builds run with ``PYTHONPATH`` at the copy, so the build and its kernel import the copy's
toy_lib, the one that is edited.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import copy_repo, jupyter_book_exe

PROBE = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Cache probe

PROSE

```{code-cell} ipython3
import uuid

import toy_lib

print("token", uuid.uuid4().hex, "from", toy_lib.__name__)
```
"""


def _build(root: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [jupyter_book_exe(), "build", "book/"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"build failed:\n{log[-4000:]}"
    return log


def _page(root: Path) -> str:
    return (root / "_build" / "html" / "cache_probe.html").read_text()


def _token(root: Path) -> str:
    found = re.findall(r"token ([0-9a-f]{32}) from toy_lib", _page(root))
    assert len(found) == 1, "the probe's output is missing from the page"
    return found[0]


@pytest.fixture(scope="module")
def probe_repo(tmp_path_factory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("cache_repo"))
    (root / "book" / "cache_probe.md").write_text(PROBE.replace("PROSE", "First prose."))
    (root / "_toc.yml").unlink()  # book/_toc.yml links to it
    (root / "_toc.yml").write_text("format: jb-book\nroot: cache_probe\n")
    return root


@pytest.mark.slow
def test_library_edits_and_only_library_edits_re_execute_the_chapters(probe_repo):
    root = probe_repo
    log = _build(root)
    assert "Executed notebook" in log
    first = _token(root)
    assert "toy_lib source sha256" not in _page(root)  # the injected cell is hidden

    # Unrelated edits: a file outside the library, and the prose of the notebook page.
    (root / "README.md").write_text((root / "README.md").read_text() + "\nAn unrelated edit.\n")
    page = root / "book" / "cache_probe.md"
    page.write_text(page.read_text().replace("First prose.", "Second prose."))
    log = _build(root)
    assert "Second prose." in _page(root)  # the page was read again ...
    assert "Executed notebook" not in log  # ... but not executed again
    assert _token(root) == first

    # A library edit, the page untouched.
    lib = root / "toy_lib" / "config.py"
    lib.write_text(lib.read_text() + "\n# an edit to the library\n")
    log = _build(root)
    assert "toy_lib changed" in log and "Executed notebook" in log
    assert _token(root) != first
