"""Check that every chapter has what a chapter of this book needs, and say what is missing.

    python scripts/check_chapters.py              # every chapter; exit 1 if anything is missing
    python scripts/check_chapters.py book/foo.md  # only these files

What counts as what:

- a *chapter* is a page that `_toc.yml` lists outside the appendices;
- an *appendix* is a page listed in a toc part whose caption begins with "Appendi"
  ("Appendices"); the root page (`index`) is the landing page. Neither gets the chapter checks;
- every other `.md` file in `book/` (outside folders whose names start with `_` or `.`, such as
  `book/_templates/`) must be listed in `_toc.yml`: the book builds only the files its toc lists,
  so an unlisted chapter would silently vanish from the HTML.

A chapter needs: jupytext front matter with a kernel; a label `(name)=` above its title; learning
objectives; at least one executed figure (a code cell with `mystnb: figure:` metadata, or a
`{glue:figure}`); a "What you should see" box; at least one exercise; a `## Summary` section; and
a Colab edition (`book/<chapter>.ipynb`) exactly as `scripts/sync_notebooks.py` writes it now,
with no jupytext pairing (`formats:`) in the front matter. Every exercise stub (a code cell
tagged `skip-execution` inside an exercise) ends with a call to a checker of
`toy_lib.exercises` (`exercises.check_...(...)`): in Colab "Run all" runs every stub, and the
checker prints "not attempted yet" where the TODO still raises NotImplementedError. Every
message names the file, the line where it helps, and the snippet to add.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import colab_edition as ce  # noqa: E402  (the one reader of MyST blocks)
import sync_notebooks as sn  # noqa: E402  (the toc, the config and the install cell live there)

REPO = sn.REPO
TEMPLATE_MARK = "TEMPLATE:"

_HEADING_RE = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*$", re.MULTILINE)
_OBJECTIVES_RE = re.compile(
    r"(by the end of (the|this) chapter,? you (should|will) be able to|learning objectives)", re.IGNORECASE
)


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _directives(text: str) -> list[tuple[str, str, int]]:
    """(name, argument, line) of every directive (```{name} or :::{name}), nested ones too."""
    return [(b.name, b.arg, b.line) for b in ce.walk(ce.blocks(text)) if b.kind == "directive"]


def _code_cells(text: str) -> list[tuple[dict, str, int]]:
    """(options, code, line) for every ```{code-cell} block of a MyST notebook."""
    return [(b.options, b.body, b.line) for b in ce.walk(ce.blocks(text)) if b.kind == "cell"]


def suggested_label(docname: str) -> str:
    return Path(docname).name.replace("_", "-")


# --------------------------------------------------------------------------- the checks


def check_chapter(md: Path, repo: Path = REPO) -> list[str]:
    """Everything missing from one chapter, as messages that say what to add and where."""
    rel = md.relative_to(repo).as_posix()
    if not md.exists():
        return [
            f"{rel}: listed in _toc.yml but the file does not exist. Create it from "
            "book/_templates/chapter_template.md, or remove the entry from _toc.yml."
        ]
    text = md.read_text(encoding="utf-8")
    docname = md.relative_to(repo / "book").with_suffix("").as_posix()
    problems: list[str] = []

    def need(what: str, where: str, snippet: str) -> None:
        problems.append(f"{rel}: missing {what}. Add this {where}:\n" + _indent(snippet))

    # 1. jupytext front matter with a kernel
    fm = sn.front_matter(text)
    if fm is None:
        need(
            "the jupytext front matter (the chapter is executed as a notebook)",
            "as the very first lines",
            FRONT_MATTER,
        )
        fm = {}
    else:
        jt = fm.get("jupytext") or {}
        rep = jt.get("text_representation") or {} if isinstance(jt, dict) else {}
        if not isinstance(jt, dict) or rep.get("format_name") != "myst":
            need(
                "`jupytext: text_representation: format_name: myst` in the front matter",
                "inside the `---` block at the top",
                FRONT_MATTER_JUPYTEXT,
            )
        ks = fm.get("kernelspec") or {}
        if not isinstance(ks, dict) or not ks.get("name"):
            need(
                "a kernel (`kernelspec:` with a `name`) in the front matter",
                "inside the `---` block at the top",
                FRONT_MATTER_KERNEL,
            )

    # 2. a label above the title
    headings = list(_HEADING_RE.finditer(_strip_code(text)))
    title = next((h for h in headings if len(h.group("hashes")) == 1), None)
    label = suggested_label(docname)
    if title is None:
        need("a title (one `# ` heading)", "after the front matter", f"({label})=\n# The chapter's title")
    else:
        before = _strip_code(text)[: title.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if not re.fullmatch(r"\([\w.:-]+\)=\s*", before):
            need(
                f"a label for the chapter (so other pages can link to it with {{ref}}`{label}`)",
                f"on the line just above the title (line {_line_of(text, title.start())})",
                f"({label})=",
            )

    # 3. learning objectives
    m = _OBJECTIVES_RE.search(text)
    if not m or not re.search(r"^\s*[-*]\s+\S", text[m.end() : m.end() + 600], re.MULTILINE):
        need(
            "the learning objectives (a sentence and a bullet list)",
            "after the chapter's opening paragraph, before the first section",
            OBJECTIVES,
        )

    # 4. at least one executed figure
    cells = _code_cells(text)
    has_figure_cell = any(isinstance(o.get("mystnb"), dict) and "figure" in o["mystnb"] for o, _, _ in cells)
    has_glue_figure = any(name == "glue:figure" for name, _, _ in _directives(text))
    if not (has_figure_cell or has_glue_figure):
        need(
            "an executed figure (a code cell that draws it, with `mystnb: figure:` metadata)",
            "where the figure belongs",
            FIGURE,
        )

    # 5. a "What you should see" box
    if not any(name == "what-you-should-see" for name, _, _ in _directives(text)):
        need('a "What you should see" box', "right after the figure or output it describes", BOX)

    # 6. exercises
    if not any(name in ("exercise", "exercise-start") for name, _, _ in _directives(text)):
        need("exercises (sphinx-exercise)", "in a `## Exercises` section before the summary", EXERCISE)

    # 7. a summary
    if not any(
        len(h.group("hashes")) == 2 and h.group("title").lower().startswith("summary") for h in headings
    ):
        need("a `## Summary` section", "at the end of the chapter", SUMMARY)

    # 8. placeholders left over from the template
    for i, line in enumerate(text.split("\n"), start=1):
        if TEMPLATE_MARK in line:
            problems.append(
                f"{rel}:{i}: a placeholder from the chapter template is still there; replace it "
                f"with the chapter's own text:\n" + _indent(line.strip())
            )

    # 9. the Colab edition: no jupytext pairing, the install cell, the notebook in step
    paired = sn.pairing(text)
    if paired:
        problems.append(
            f"{rel}: the front matter still pairs the chapter with its notebook through jupytext "
            f"(`{paired}`). The Colab notebook is generated now, and a pairing would let Jupyter "
            "overwrite it with raw MyST: delete that line (`python scripts/sync_notebooks.py` does it)."
        )
    install = sn.find_install_cell(text)
    if install is None:
        problems.append(
            f"{rel}: missing the Colab install cell (the first code cell). Run "
            "`python scripts/sync_notebooks.py`, which writes it from _config.yml."
        )
    else:
        if cells and sn.INSTALL_TAG not in str(cells[0][0].get("tags", [])):
            problems.append(
                f"{rel}:{_line_of(text, install.start())}: the Colab install cell must be the "
                "first code cell: move it above the other code cells."
            )
        if install.group(0).rstrip("\n") != sn.install_cell(repo):
            problems.append(
                f"{rel}:{_line_of(text, install.start())}: the Colab install cell is out of date "
                "with _config.yml (repository or branch). Run `python scripts/sync_notebooks.py`."
            )
    problem = notebook_in_step(md, repo)
    if problem:
        problems.append(problem)

    # 10. every exercise stub ends with a checker, so "Run all" in Colab runs to the end
    problems += stub_problems(rel, text, repo)
    return problems


def notebook_in_step(md: Path, repo: Path = REPO) -> str | None:
    """None when `md`'s Colab notebook is exactly what scripts/sync_notebooks.py writes now
    (from the chapter with its install cell refreshed); else what is wrong."""
    nb_path = md.with_suffix(".ipynb")
    try:
        rel = nb_path.relative_to(repo).as_posix()
    except ValueError:
        rel = nb_path.as_posix()
    fix = "Run `python scripts/sync_notebooks.py` and commit the .ipynb with the chapter."
    if not nb_path.exists():
        return f'{rel}: missing (the chapter\'s "Open in Colab" button links to it). {fix}'
    docname = md.relative_to(repo / "book").with_suffix("").as_posix()
    text = sn.with_install_cell(sn.without_pairing(md.read_text(encoding="utf-8")), repo)
    try:
        expected = sn.colab_notebook(sn.Page(docname, "", "chapter"), repo, text=text)
    except ce.ColabError as err:
        return f"{err}\n  (so {rel} cannot be generated)"
    if nb_path.read_text(encoding="utf-8") != expected:
        return f"{rel}: out of step with {md.name} (not what scripts/sync_notebooks.py writes now). {fix}"
    return None


def checker_names(repo: Path = REPO) -> set[str]:
    """The `check_*` functions toy_lib/exercises.py defines (read, not imported: no torch)."""
    path = repo / "toy_lib" / "exercises.py"
    if not path.exists():
        path = REPO / "toy_lib" / "exercises.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("check_")}


def stub_problems(rel: str, text: str, repo: Path = REPO) -> list[str]:
    """Exercise stubs that do not end with a call to an existing `exercises.check_*`."""
    problems = []
    known = None
    for stub in ce.exercise_stubs(text):
        checker = ce.last_checker_call(stub.code)
        last = next((ln for ln in reversed(stub.code.split("\n")) if ln.strip()), "")
        if checker is None:
            problems.append(
                f"{rel}:{stub.line}: the exercise stub of {stub.exercise or 'an exercise'} must end "
                "with a call to a checker from toy_lib.exercises, e.g. "
                "`exercises.check_forward(forward)`. In Colab, Run all runs every stub, and only a "
                'checker turns the unfilled TODO (NotImplementedError) into "not attempted yet" '
                "instead of stopping the notebook. The stub's last line is:\n" + _indent(last)
            )
            continue
        known = checker_names(repo) if known is None else known
        if checker not in known:
            problems.append(
                f"{rel}:{stub.line}: the exercise stub of {stub.exercise or 'an exercise'} calls "
                f"`exercises.{checker}`, which toy_lib/exercises.py does not define (it has "
                + ", ".join(sorted(known))
                + "). Add the checker there, with tests in tests/test_exercises.py."
            )
    return problems


def _strip_code(text: str) -> str:
    """`text` with the contents of code cells and code blocks blanked (line numbers kept)."""

    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return re.sub(r"^```[^\n]*\n.*?^```[ \t]*$", blank, text, flags=re.MULTILINE | re.DOTALL)


def unlisted_pages(repo: Path = REPO) -> list[str]:
    """Messages for `.md` files in book/ that `_toc.yml` does not list."""
    listed = {p.docname for p in sn.toc_pages(repo)}
    problems = []
    book = repo / "book"
    for md in sorted(book.rglob("*.md")):
        rel_book = md.relative_to(book)
        if any(part.startswith(("_", ".")) for part in rel_book.parts[:-1]):
            continue
        docname = rel_book.with_suffix("").as_posix()
        if docname not in listed:
            problems.append(
                f"book/{rel_book.as_posix()}: not in _toc.yml, so the book does not build it. Add it to "
                "_toc.yml under the `Chapters` part (or under `Appendices` for an appendix):\n"
                + _indent(f"- file: {docname}", 6)
            )
    return problems


def check(repo: Path = REPO, files: list[Path] | None = None) -> list[str]:
    """All problems for the given chapter files, or for the whole book."""
    chapters = {sn.source_path(p, repo).resolve(): p for p in sn.chapter_pages(repo)}
    if files:
        others = {sn.source_path(p, repo).resolve(): p for p in sn.toc_pages(repo) if p.kind != "chapter"}
        problems = []
        for f in files:
            f = f.resolve()
            if f in chapters:
                problems += check_chapter(f, repo)
            elif f in others:
                print(f"{f.name}: the {others[f].kind} page, not a chapter; the chapter checks do not apply")
            else:
                problems.append(
                    f"{f}: not in _toc.yml. Add it under the `Chapters` part of _toc.yml "
                    "(or under `Appendices` for an appendix)."
                )
        return problems
    problems = unlisted_pages(repo)
    for path in chapters:
        problems += check_chapter(path, repo)
    return problems


def _indent(snippet: str, n: int = 4) -> str:
    return "\n".join((" " * n + line) if line else "" for line in snippet.strip("\n").split("\n"))


# --------------------------------------------------------------------------- snippets to add

FRONT_MATTER_JUPYTEXT = """\
jupytext:
  text_representation:
    extension: .md
    format_name: myst
"""
FRONT_MATTER_KERNEL = """\
kernelspec:
  display_name: Python 3
  language: python
  name: python3
"""
FRONT_MATTER = "---\n" + FRONT_MATTER_JUPYTEXT + FRONT_MATTER_KERNEL + "---"
OBJECTIVES = """\
By the end of the chapter you should be able to:

- explain ...;
- compute ...;
"""
FIGURE = """\
```{code-cell} ipython3
---
mystnb:
  figure:
    caption: What the figure shows, and what to look for in it.
    name: fig-short-name
---
plots.feature_arrows(result.W);
```
"""
BOX = """\
```{what-you-should-see}
:name: box-short-name
What the reader's own run should show, in numbers they can compare (every claim here is
asserted by a test decorated with @claims("box-short-name"): see tests/claims.py).
```
"""
EXERCISE = """\
```{exercise-start}
:label: ex-short-name
:class: core
```
What to do, in one or two sentences.
```{exercise-end}
```

```{solution-start} ex-short-name
:class: dropdown
```
The answer.
```{solution-end}
```
"""
SUMMARY = """\
## Summary

- The chapter's main points, one bullet each.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="chapter files (default: every chapter)")
    parser.add_argument("--repo", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    problems = check(repo, [f if f.is_absolute() else Path.cwd() / f for f in args.files] or None)
    if problems:
        print(f"{len(problems)} problem(s):\n", file=sys.stderr)
        print("\n\n".join(problems), file=sys.stderr)
        return 1
    if args.files:
        print("nothing missing in", ", ".join(str(f) for f in args.files))
    else:
        print("every chapter has what it needs:", ", ".join(p.docname for p in sn.chapter_pages(repo)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
