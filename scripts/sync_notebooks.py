"""Pair every chapter with a Colab notebook and keep the two in step.

    python scripts/sync_notebooks.py            # write/refresh, then `jupytext --sync`
    python scripts/sync_notebooks.py --check    # change nothing; exit 1 if anything is stale

For each chapter (every page of `_toc.yml` outside the appendices, see `chapter_pages`), this

1. makes sure the chapter's jupytext front matter pairs it with a notebook
   (`formats: md:myst,ipynb`), so the theme's "Open in Colab" button links to
   `book/<chapter>.ipynb` instead of the `.md`, which Colab cannot open;
2. writes the Colab install cell as the chapter's first code cell, or refreshes it. The cell
   installs toy_lib from the repository and branch named in `_config.yml` (the one place they are
   set), only when it runs in Colab or when `TOY_LIB_INSTALL_TARGET` says where to install from
   (the tests point it at a copy of the working tree). It is tagged `skip-execution`, so the book
   build never runs it, and `hide-input`, so the HTML page folds it away;
3. runs `jupytext --sync` on the chapter, which writes `book/<chapter>.ipynb` and keeps its cell
   ids stable. The `.md` is the source: the script makes sure jupytext reads the inputs from it.

The `.md` is what contributors edit. Run this script after editing a chapter (the pre-commit
hook runs `jupytext --sync` too) and commit both files.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

#: The tag that marks the install cell (besides `skip-execution`).
INSTALL_TAG = "colab-install"
#: The environment variable that overrides what the install cell installs.
TARGET_ENV = "TOY_LIB_INSTALL_TARGET"
#: Besides toy_lib, Colab needs myst-nb: chapters call `myst_nb.glue`, and Colab does not ship it.
EXTRA_REQUIREMENTS = ('"myst-nb>=1.0,<2"',)
#: The jupytext pairing every chapter declares in its front matter.
FORMATS = "md:myst,ipynb"

_PART_APPENDIX = re.compile(r"^\s*appendi", re.IGNORECASE)


@dataclass(frozen=True)
class Page:
    """One page listed in the table of contents."""

    docname: str  # path relative to book/, without extension, e.g. "toy_models"
    part: str  # caption of the toc part that lists it ("" for the root page)
    kind: str  # "root", "chapter" or "appendix"


def load_config(repo: Path = REPO) -> dict:
    return yaml.safe_load((repo / "_config.yml").read_text(encoding="utf-8"))


def repository(repo: Path = REPO) -> tuple[str, str, str]:
    """(url, branch, path_to_book) from `_config.yml`, the one place they are set."""
    cfg = load_config(repo).get("repository") or {}
    url = str(cfg.get("url", "")).rstrip("/")
    if not url:
        raise SystemExit(f"{repo / '_config.yml'}: `repository: url:` is not set")
    if url.endswith(".git"):
        url = url[: -len(".git")]
    # Jupyter Book's default is `master`; the config must name the branch explicitly.
    branch = str(cfg.get("branch", "master"))
    path_to_book = str(cfg.get("path_to_book", "")).strip("/")
    return url, branch, path_to_book


def toc_pages(repo: Path = REPO) -> list[Page]:
    """Every page of `_toc.yml` in order, each classed as root, chapter or appendix.

    A page is an *appendix* when the toc part that lists it has a caption beginning with
    "Appendi" ("Appendices", "Appendix"). The root page is the landing page. Every other page,
    including pages nested under a chapter's `sections:`, is a *chapter*.
    """
    toc = yaml.safe_load((repo / "_toc.yml").read_text(encoding="utf-8"))
    pages = [Page(_strip_ext(toc["root"]), "", "root")]

    def walk(entries, part, kind):
        for entry in entries or []:
            if "file" in entry:
                pages.append(Page(_strip_ext(entry["file"]), part, kind))
            walk(entry.get("sections"), part, kind)
            walk(entry.get("chapters"), part, kind)

    for part in toc.get("parts") or []:
        caption = str(part.get("caption", ""))
        walk(part.get("chapters"), caption, "appendix" if _PART_APPENDIX.match(caption) else "chapter")
    walk(toc.get("chapters"), "", "chapter")
    walk(toc.get("sections"), "", "chapter")
    return pages


def chapter_pages(repo: Path = REPO) -> list[Page]:
    return [p for p in toc_pages(repo) if p.kind == "chapter"]


def _strip_ext(name: str) -> str:
    for ext in (".md", ".ipynb"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def install_target(repo: Path = REPO) -> str:
    """The pip requirement the install cell uses by default: toy_lib from the configured branch."""
    url, branch, _ = repository(repo)
    return f"toy_lib @ git+{url}@{branch}"


def install_cell(repo: Path = REPO) -> str:
    """The install cell, as a MyST `code-cell` block (no trailing blank line)."""
    url, branch, _ = repository(repo)
    extras = " ".join(EXTRA_REQUIREMENTS)
    return f"""```{{code-cell}} ipython3
:tags: [skip-execution, {INSTALL_TAG}, hide-input]

# Colab only: install toy_lib from the book's repository, and myst-nb
# (for `glue`). Anywhere else this cell does nothing, unless
# {TARGET_ENV} names what to install (a local clone, say).
# Written by scripts/sync_notebooks.py from _config.yml.
import os
import sys

if "google.colab" in sys.modules or "{TARGET_ENV}" in os.environ:
    _target = os.environ.get(
        "{TARGET_ENV}",
        "{install_target(repo)}",
    )
    %pip install --quiet "{{_target}}" {extras}
```"""


_CELL_RE = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```[ \t]*$\n?", re.MULTILINE | re.DOTALL)
_FRONT_RE = re.compile(r"\A---\n(?P<yaml>.*?)\n---[ \t]*\n", re.DOTALL)


def front_matter(text: str) -> dict | None:
    m = _FRONT_RE.match(text)
    if not m:
        return None
    try:
        data = yaml.safe_load(m.group("yaml"))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def find_install_cell(text: str) -> re.Match | None:
    for m in _CELL_RE.finditer(text):
        header = m.group("body").split("\n\n", 1)[0]
        if re.search(rf"^:tags:.*\b{INSTALL_TAG}\b", header, re.MULTILINE) or re.search(
            rf"^\s*-\s*{INSTALL_TAG}\s*$", header, re.MULTILINE
        ):
            return m
    return None


def with_install_cell(text: str, repo: Path = REPO) -> str:
    """`text` with the install cell refreshed, or inserted before the first code cell."""
    cell = install_cell(repo)
    m = find_install_cell(text)
    if m:
        return text[: m.start()] + cell + "\n" + text[m.end() :]
    first = _CELL_RE.search(text)
    if first:
        return text[: first.start()] + cell + "\n\n" + text[first.start() :]
    # A chapter without code: append the cell (the chapter check will still ask for figures).
    return text.rstrip("\n") + "\n\n" + cell + "\n"


def with_pairing(text: str) -> str:
    """`text` with `formats: md:myst,ipynb` in its jupytext front matter."""
    m = _FRONT_RE.match(text)
    if not m:
        raise ValueError("no front matter (a `---` block at the top of the file)")
    block = m.group("yaml")
    if re.search(r"^  formats:.*$", block, re.MULTILINE):
        block = re.sub(r"^  formats:.*$", f"  formats: {FORMATS}", block, count=1, flags=re.MULTILINE)
    elif re.search(r"^jupytext:[ \t]*$", block, re.MULTILINE):
        block = re.sub(
            r"^jupytext:[ \t]*$", f"jupytext:\n  formats: {FORMATS}", block, count=1, flags=re.MULTILINE
        )
    else:
        raise ValueError("the front matter has no `jupytext:` section")
    return text[: m.start("yaml")] + block + text[m.end("yaml") :]


def source_path(page: Page, repo: Path = REPO) -> Path:
    return repo / "book" / f"{page.docname}.md"


def notebook_path(page: Page, repo: Path = REPO) -> Path:
    return repo / "book" / f"{page.docname}.ipynb"


def jupytext_sync(md: Path) -> None:
    """`jupytext --sync md`, with the `.md` as the source of the inputs.

    jupytext takes the inputs from whichever paired file is newer; a fresh clone can leave the
    notebook newer than the chapter, so make the chapter the newer one first.
    """
    nb = md.with_suffix(".ipynb")
    if nb.exists() and nb.stat().st_mtime >= md.stat().st_mtime:
        now = time.time()
        os.utime(nb, (now - 2, now - 2))
        os.utime(md, (now, now))
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(md)], check=True)


def sync(repo: Path = REPO, check: bool = False, pages: list[Page] | None = None) -> list[str]:
    """Bring every chapter's pairing, install cell and notebook up to date.

    With ``check=True`` nothing is written; the return value lists what is out of date.
    """
    from check_chapters import notebook_in_step  # the one definition of "in step"

    stale = []
    for page in pages if pages is not None else chapter_pages(repo):
        md = source_path(page, repo)
        rel = md.relative_to(repo)
        if not md.exists():
            stale.append(f"{rel}: missing (listed in _toc.yml)")
            continue
        text = md.read_text(encoding="utf-8")
        try:
            new = with_install_cell(with_pairing(text), repo)
        except ValueError as err:
            stale.append(f"{rel}: {err}")
            continue
        if check:
            if new != text:
                stale.append(f"{rel}: the front matter pairing or the Colab install cell is out of date")
            problem = notebook_in_step(md, repo)
            if problem:
                stale.append(problem)
            continue
        if new != text:
            md.write_text(new, encoding="utf-8")
        jupytext_sync(md)
        problem = notebook_in_step(md, repo)
        if problem:  # should not happen: jupytext just wrote it
            stale.append(problem)
    return stale


def hook(files: list[str], repo: Path = REPO) -> int:
    """The pre-commit hook: `jupytext --sync --pre-commit-mode` on the chapters among ``files``
    (on every chapter when ``files`` include `_config.yml` or `_toc.yml`).

    Only chapters are paired. Other pages are left alone: given a markdown file without a
    jupytext header, jupytext guesses its format, and a page with `:::` fences would need pandoc.
    The chapter's pairing and install cell are refreshed first. jupytext takes the inputs from
    whichever of the pair is newer, so an edit made in Jupyter to the .ipynb is kept as well.
    """
    chapters = {source_path(p, repo).resolve(): p for p in chapter_pages(repo)}
    if any(Path(f).name in ("_config.yml", "_toc.yml") for f in files):
        targets = sorted(chapters)  # the repository, the branch or the chapters may have changed
    else:
        targets = sorted({Path(f).resolve().with_suffix(".md") for f in files} & set(chapters))
    status = 0
    for md in targets:
        text = md.read_text(encoding="utf-8")
        try:
            new = with_install_cell(with_pairing(text), repo)
        except ValueError as err:
            print(f"{md.relative_to(repo)}: {err}", file=sys.stderr)
            status = 1
            continue
        if new != text:
            md.write_text(new, encoding="utf-8")
            print(f"{md.relative_to(repo)}: refreshed the Colab install cell / pairing", file=sys.stderr)
            status = 1
        cmd = [sys.executable, "-m", "jupytext", "--sync", "--pre-commit-mode", str(md)]
        status |= subprocess.run(cmd).returncode
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report what is out of date, change nothing")
    parser.add_argument("--hook", nargs="*", metavar="FILE", help="pre-commit mode: sync these chapters only")
    args = parser.parse_args(argv)
    if args.hook is not None:
        return hook(args.hook)
    stale = sync(check=args.check)
    for line in stale:
        print(line, file=sys.stderr)
    if stale:
        if args.check:
            print(
                "Run `python scripts/sync_notebooks.py` and commit the chapters and their .ipynb files.",
                file=sys.stderr,
            )
        return 1
    if not args.check:
        print("chapters and Colab notebooks are in step:", ", ".join(p.docname for p in chapter_pages()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
