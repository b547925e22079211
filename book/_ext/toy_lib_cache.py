"""Make every chapter's executed result depend on toy_lib's source code.

Jupyter Book's execution cache (jupyter-cache) re-runs a notebook only when its code cells change,
and Sphinx re-reads a page only when its file changes, so an edit to the library alone would
leave every figure as the old code drew it. This extension closes the gap, for notebook pages
only (MyST markdown notebooks; other pages are untouched):

1. ``source-read``: appends a hidden code cell (tag ``remove-cell``) holding the hash of the
   library's source (`toy_lib.source_hash.library_hash`, over every ``*.py`` file of the toy_lib
   that the build's Python imports). The cell is a comment; it changes the notebook's code, and
   with it jupyter-cache's key, whenever the library changes.
2. ``env-get-outdated``: when the hash differs from the one the previous build recorded, the
   notebook pages read with the old hash are handed back to Sphinx to read again (and so to be
   executed again); nothing else is.
3. ``builder-inited``: sets ``TOY_LIB_CACHE_DIR`` to ``<build folder>/.toy_lib_cache`` for the
   kernels the build starts, so that `toy_lib.cached_train` shares trained results between
   chapters within a build and a clean build starts afresh.

Registered in ``_config.yml`` under ``sphinx: local_extensions``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from myst_nb.core.read import is_myst_markdown_notebook
from sphinx.util import logging

PACKAGE = "toy_lib"
CACHE_ENV = "TOY_LIB_CACHE_DIR"
MARKER = "toy_lib source sha256:"
logger = logging.getLogger(__name__)


def _package_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{__name__}: cannot find the {PACKAGE} package that the chapters import")
    return Path(list(spec.submodule_search_locations)[0])


def _library_hash(package_dir: Path) -> str:
    """toy_lib.source_hash.library_hash, loaded by path so that torch is not imported here."""
    path = package_dir / "source_hash.py"
    spec = importlib.util.spec_from_file_location(f"_{PACKAGE}_source_hash", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.library_hash(package_dir)


def _builder_inited(app) -> None:
    package_dir = _package_dir()
    app.env.toy_lib_hash_now = _library_hash(package_dir)
    if not hasattr(app.env, "toy_lib_pages"):
        app.env.toy_lib_pages = set()
    logger.info(f"[toy_lib_cache] {package_dir}: {MARKER} {app.env.toy_lib_hash_now[:12]}")
    os.environ.setdefault(CACHE_ENV, str(Path(app.outdir).parent / ".toy_lib_cache"))


def _env_get_outdated(app, env, added, changed, removed) -> list[str]:
    old = getattr(env, "toy_lib_hash_read", None)
    new = env.toy_lib_hash_now
    env.toy_lib_hash_read = new
    if old is None or old == new:
        return []
    stale = sorted(d for d in env.toy_lib_pages if d in env.found_docs and d not in removed)
    if stale:
        logger.info(f"[toy_lib_cache] toy_lib changed: re-reading {len(stale)} notebook page(s)")
    return stale


def _source_read(app, docname: str, source: list[str]) -> None:
    if not is_myst_markdown_notebook(source[0]):
        return
    cell = (
        f"\n\n```{{code-cell}} ipython3\n:tags: [remove-cell]\n\n# {MARKER} {app.env.toy_lib_hash_now}\n```\n"
    )
    source[0] = source[0].rstrip("\n") + cell
    app.env.toy_lib_pages.add(docname)


def _env_purge_doc(app, env, docname: str) -> None:
    getattr(env, "toy_lib_pages", set()).discard(docname)


def _env_merge_info(app, env, docnames, other) -> None:
    env.toy_lib_pages |= getattr(other, "toy_lib_pages", set())


def setup(app):
    app.connect("builder-inited", _builder_inited)
    app.connect("env-get-outdated", _env_get_outdated)
    app.connect("source-read", _source_read)
    app.connect("env-purge-doc", _env_purge_doc)
    app.connect("env-merge-info", _env_merge_info)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
