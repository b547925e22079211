"""Every claim a chapter makes about its own results is asserted by a test on those results.

How it works, for chapter authors and test authors:

1. Every "What you should see" box carries a name, and so does every solution (sphinx-exercise
   gives each solution its exercise's label)::

       ```{what-you-should-see}
       :name: box-toy-sweep
       At S = 0.7 four arrows in two antipodal pairs ...
       ```

2. A test that checks a box's (or a solution's) claims says so with `claims`::

       @claims("box-toy-sweep")
       def test_dense_model_keeps_two_features(toy_models):
           ...

   ``tests/test_claims.py`` fails when a chapter has a box or a solution that no test claims, or
   a test claims a name that no chapter has. A solution that makes no claim about any result (a
   derivation, a reflection) is listed in `NO_RESULT_CLAIMS` with the reason.

3. The test reads *the chapter's own results*: `run_chapter` executes the chapter's code cells
   (the book's build executes the same cells) in this process, with toy_lib's result cache
   pointed at the cache of the book that the test session built. Every training run in a chapter
   goes through `toy_lib.cached_train` (or another cached entry point), so nothing is trained
   twice: the test gets the very weights the figures were drawn from, with the same
   configuration, seed and restarts, and cannot drift from the chapter. Values the chapter glues
   into its prose are collected in ``namespace["glued"]``.

Use it through the ``chapter`` fixture factory of ``conftest.py``::

    @pytest.fixture(scope="module")
    def toy_models(chapter):
        return chapter("toy_models")
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import sync_notebooks as sn  # noqa: E402  (the one reader of _toc.yml)

#: Solutions that make no claim about a chapter's results, by label, with the reason.
NO_RESULT_CLAIMS: dict[str, str] = {
    "ex-features-steering": "a reflection on steering; it computes nothing from the chapter's results",
    "ex-features-linear-breakdown": "a reflection on where the linear representation hypothesis may fail",
    "ex-features-brains": "a reflection on superposition in brains, citing the literature only",
    "ex-geometry-orthogonal": "a proof, with no claim about the chapter's results",
    "ex-geometry-compression": "a reflection on compression against interpretability",
    "ex-richer-correlation-reflection": "a reflection on what correlation does to interpretability",
    "ex-richer-two-neurons": "a derivation (why |x| takes two neurons per feature), no claim about results",
    "ex-real-model-index": "a question about naming latents across seeds; its solution reasons, it quotes no result",
}

_CELL_RE = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def claims(*labels: str):
    """Mark a test as asserting the claims of the named boxes or solutions."""
    if not labels or not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"claims{labels!r}: expected one or more box or solution names")
    return pytest.mark.claims(*labels)


# --------------------------------------------------------------------------- reading chapters


def code_cells(md: Path) -> list[tuple[list[str], str]]:
    """``(tags, code)`` of every code cell of a MyST notebook, in order."""
    cells = []
    for m in _CELL_RE.finditer(md.read_text(encoding="utf-8")):
        lines = m.group("body").split("\n")
        tags: list[str] = []
        if lines and lines[0].strip() == "---":  # a YAML block of options
            end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
            header, lines = lines[1:end], lines[end + 1 :]
            tag_line = next((h for h in header if h.strip().startswith("tags:")), "")
            tags = re.findall(r"[\w-]+", tag_line.split(":", 1)[1]) if tag_line else []
        else:
            while lines and re.match(r"^:[\w-]+:", lines[0]):
                key, _, value = lines[0][1:].partition(":")
                if key == "tags":
                    tags = re.findall(r"[\w-]+", value)
                lines = lines[1:]
        cells.append((tags, "\n".join(lines)))
    return cells


def _without_magics(code: str) -> str:
    """IPython magics and shell escapes are not Python: comment them out."""
    return "\n".join(("# " + ln) if ln.lstrip().startswith(("%", "!")) else ln for ln in code.split("\n"))


class _Glue:
    """Stands in for ``myst_nb.glue`` while a chapter runs: remembers what was glued."""

    def __init__(self):
        self.values: dict[str, object] = {}

    def __call__(self, name, variable, display=True):
        self.values[name] = variable


_RUNS: dict[tuple[str, str], dict] = {}


def run_chapter(docname: str, cache_dir: Path) -> dict:
    """Execute chapter ``docname``'s code cells (except ``skip-execution`` ones) in a fresh
    namespace, with ``TOY_LIB_CACHE_DIR=cache_dir``; return the namespace.

    ``namespace["glued"]`` maps every glued name to its value. Output printed by the cells is
    kept in ``namespace["printed"]``. Figures are closed. Runs once per chapter and cache.
    """
    key = (docname, str(cache_dir))
    if key in _RUNS:
        return _RUNS[key]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import myst_nb

    md = REPO / "book" / f"{docname}.md"
    glue = _Glue()
    namespace: dict = {"__name__": f"chapter_{docname}"}
    printed = io.StringIO()
    before_env = os.environ.get("TOY_LIB_CACHE_DIR")
    before_glue = myst_nb.glue
    os.environ["TOY_LIB_CACHE_DIR"] = str(cache_dir)
    myst_nb.glue = glue
    try:
        with contextlib.redirect_stdout(printed):
            for i, (tags, code) in enumerate(code_cells(md)):
                if "skip-execution" in tags:
                    continue
                try:
                    exec(compile(_without_magics(code), f"{md.name}[cell {i + 1}]", "exec"), namespace)
                except Exception as err:
                    if "raises-exception" in tags:
                        continue
                    raise AssertionError(f"{md.name}, code cell {i + 1} failed: {err!r}\n{code}") from err
                plt.close("all")
    finally:
        myst_nb.glue = before_glue
        if before_env is None:
            os.environ.pop("TOY_LIB_CACHE_DIR", None)
        else:
            os.environ["TOY_LIB_CACHE_DIR"] = before_env
    namespace["glued"] = glue.values
    namespace["printed"] = printed.getvalue()
    _RUNS[key] = namespace
    return namespace


# --------------------------------------------------------------------------- the bookkeeping

_BOX_RE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{what-you-should-see\}[^\n]*\n(?P<opts>(?::[\w-]+:[^\n]*\n)*)", re.M
)
_SOLUTION_RE = re.compile(r"^(`{3,}|:{3,})\{(solution|solution-start)\}\s*(?P<target>[\w:-]+)", re.M)


def boxes_and_solutions(docnames: list[str] | None = None) -> dict[str, str]:
    """``{name: "book/<chapter>.md:<line>"}`` of every box and solution of the chapters.

    A box without a ``:name:`` is reported as ``"<unnamed box at book/x.md:LINE>"``.
    """
    found: dict[str, str] = {}
    pages = [p.docname for p in sn.chapter_pages(REPO)] if docnames is None else docnames
    for docname in pages:
        md = REPO / "book" / f"{docname}.md"
        text = md.read_text(encoding="utf-8")
        for m in _BOX_RE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            name = re.search(r"^:name:\s*(\S+)", m.group("opts"), re.M)
            where = f"book/{docname}.md:{line}"
            found[name.group(1) if name else f"<unnamed box at {where}>"] = where
        for m in _SOLUTION_RE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found[m.group("target")] = f"book/{docname}.md:{line}"
    return found


def claimed_in_tests(tests: Path = REPO / "tests") -> dict[str, list[str]]:
    """``{name: ["tests/test_x.py::test_y", ...]}`` for every ``@claims(...)`` in the tests."""
    out: dict[str, list[str]] = {}
    for path in sorted(tests.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "claims":
                    for arg in dec.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            out.setdefault(arg.value, []).append(f"tests/{path.name}::{node.name}")
    return out
