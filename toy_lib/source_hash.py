"""A fingerprint of toy_lib's source code (standard library only: no torch import).

The book's build extension (book/_ext/toy_lib_cache.py) loads this file by path to decide when
chapters must be re-executed, and `toy_lib.cache` keys stored training results by it, so that an
edit to the library never serves results computed by the old code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def library_hash(directory: str | Path = PACKAGE_DIR) -> str:
    """SHA-256 (hex) over the relative paths and contents of every ``*.py`` file in ``directory``.

    Files are visited in sorted order, so the hash depends on the source only, not on the file
    system; compiled ``__pycache__`` files and non-Python files are ignored.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"directory={str(directory)!r}: expected a folder holding toy_lib's source")
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()
