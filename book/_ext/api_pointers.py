"""Under every entry of the API reference, a pointer to the chapter that introduces it.

The API reference (book/api.md) renders toy_lib's docstrings with autodoc. This extension adds
one line to each module, class and function: "Introduced in <chapter>", where the chapter is
the first chapter of _toc.yml (as scripts/sync_notebooks.py classes pages) whose source uses the name in code
(``toy_lib.train(``, ``metrics.feature_norms(``, ``from toy_lib import train``) or in inline
code (`` `train` ``). A module points to the first chapter that uses any of its public names.
A name no chapter uses yet says so, so the gap is visible instead of hidden.

Nothing is typed by hand, so the pointers cannot drift when a chapter is added or reordered;
the API page is re-read whenever a chapter changes (the chapters are noted as its dependencies).

Registered in _config.yml under ``sphinx: local_extensions: {api_pointers: book/_ext}``.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path

from sphinx.application import Sphinx

#: autodoc object types that get a pointer (methods and attributes live under their class).
POINTED = ("module", "class", "function", "exception")
#: A MyST role such as {term}`hidden space` or {ref}`toy-models`.
ROLE = re.compile(r"\{[\w:+-]+\}`[^`]*`")


def _toc_reader(repo: Path):
    """scripts/sync_notebooks.py, the one place that decides which toc pages are chapters."""
    name = "_book_toc_reader"
    if name not in sys.modules:  # load once; dataclasses need the module in sys.modules
        spec = importlib.util.spec_from_file_location(name, repo / "scripts" / "sync_notebooks.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def chapter_sources(srcdir: Path) -> list[tuple[str, Path]]:
    """``(docname, path)`` of every chapter, in table-of-contents order."""
    repo = srcdir.parent
    toc = _toc_reader(repo)
    return [(p.docname, toc.source_path(p, repo)) for p in toc.chapter_pages(repo)]


def uses(source: str, name: str) -> bool:
    """Whether chapter text ``source`` uses the public name ``name`` in code."""
    source = ROLE.sub(" ", source)  # {term}`hidden space` is prose, not the function `hidden`
    n = re.escape(name)
    patterns = [
        rf"\.{n}\b",  # toy_lib.train(, metrics.feature_norms(
        rf"`{n}\b",  # `train` in prose
        rf"^\s*from\s+toy_lib(\.\w+)?\s+import\s+[^\n]*\b{n}\b",  # from toy_lib import train
    ]
    return any(re.search(p, source, flags=re.MULTILINE) for p in patterns)


def public_names(module) -> list[str]:
    """Names defined in ``module`` itself that do not start with an underscore."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, obj in inspect.getmembers(module)
            if not n.startswith("_") and getattr(obj, "__module__", None) == module.__name__
        ]
    return list(names)


def introduced_in(app: Sphinx, what: str, fullname: str, obj) -> str | None:
    """The docname of the first chapter that uses the object, or None."""
    chapters = chapter_sources(Path(app.srcdir))
    for _, path in chapters:
        app.env.note_dependency(str(path))
    names = public_names(obj) if what == "module" else [fullname.rsplit(".", 1)[-1]]
    if what == "module":
        names.append(fullname.rsplit(".", 1)[-1])
    for docname, path in chapters:
        text = path.read_text(encoding="utf8")
        if any(uses(text, n) for n in names):
            return docname
    return None


def add_pointer(app: Sphinx, what: str, name: str, obj, options, lines: list[str]) -> None:
    if what not in POINTED:
        return
    docname = introduced_in(app, what, name, obj)
    if docname is None:
        line = "*Not used in a chapter yet.*"
    else:
        line = f"*Introduced in* :doc:`/{docname}`."
    lines.extend(["", line, ""])


def setup(app: Sphinx) -> dict:
    # After napoleon (priority 500) has turned "Args:" into reST, so the line ends the entry.
    app.connect("autodoc-process-docstring", add_pointer, priority=600)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
