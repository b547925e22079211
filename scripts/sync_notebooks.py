"""Write every chapter's Colab edition, `book/<chapter>.ipynb`, from the chapter.

    python scripts/sync_notebooks.py            # write every chapter's notebook
    python scripts/sync_notebooks.py --check    # change nothing; exit 1 if anything is stale
    python scripts/sync_notebooks.py --hook     # pre-commit: write, exit 1 if a file changed

For each chapter (every page of `_toc.yml` outside the appendices, see `chapter_pages`), this

1. writes the Colab install cell as the chapter's first code cell, or refreshes it. The cell
   installs toy_lib (and nothing else) from the repository and branch named in `_config.yml`
   (the one place they are set), only when it runs in Colab or when `TOY_LIB_INSTALL_TARGET`
   says where to install from (the tests point it at a copy of the working tree). It is tagged
   `skip-execution`, so the book build never runs it, and `hide-input`, so the page folds it;
2. removes a jupytext pairing (`formats:`) from the chapter's front matter: the notebook is
   generated, and a pairing would let Jupyter overwrite it with raw MyST;
3. writes `book/<chapter>.ipynb`, the chapter translated to plain Markdown and code cells that
   Colab renders (scripts/colab_edition.py: the translation rules are listed at its top). The
   theme's "Open in Colab" button links to that file because it sits next to the `.md`.

The output is deterministic: an unchanged chapter gives a byte-identical notebook, and "in step"
(`--check`, scripts/check_chapters.py, the tests) means the committed notebook is exactly what
this script writes now. A chapter that uses MyST the Colab edition cannot translate is reported
with its file and line, and its notebook is left as it was.

The `.md` is what contributors edit. Run this script after editing a chapter (the pre-commit
hook runs it too) and commit both files.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

if str(Path(__file__).resolve().parent) not in sys.path:  # also when loaded by path (book/_ext)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import colab_edition  # noqa: E402  (the translation of a chapter into its Colab edition)

REPO = Path(__file__).resolve().parents[1]

#: The tag that marks the install cell (besides `skip-execution`).
INSTALL_TAG = "colab-install"
#: The environment variable that overrides what the install cell installs.
TARGET_ENV = "TOY_LIB_INSTALL_TARGET"
#: What the install cell installs besides toy_lib: nothing. The Colab edition defines its own
#: `glue` (see colab_edition.glue_shim), so it needs no myst-nb; Colab brings torch.
EXTRA_REQUIREMENTS: tuple[str, ...] = ()

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
    extras = "".join(f" {e}" for e in EXTRA_REQUIREMENTS)
    return f"""```{{code-cell}} ipython3
:tags: [skip-execution, {INSTALL_TAG}, hide-input]

# Colab only: install toy_lib from the book's repository. Anywhere else
# this cell does nothing, unless {TARGET_ENV} names what to
# install (a local clone, say).
# Written by scripts/sync_notebooks.py from _config.yml.
import os
import sys

if "google.colab" in sys.modules or "{TARGET_ENV}" in os.environ:
    _target = os.environ.get(
        "{TARGET_ENV}",
        "{install_target(repo)}",
    )
    %pip install --quiet "{{_target}}"{extras}
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


#: A jupytext pairing line in the front matter (`  formats: md:myst,ipynb`).
_PAIRING_RE = re.compile(r"^[ \t]+formats:.*\n", re.MULTILINE)


def pairing(text: str) -> str | None:
    """The jupytext `formats:` line of the front matter, if the chapter still has one."""
    m = _FRONT_RE.match(text)
    found = _PAIRING_RE.search(m.group("yaml") + "\n") if m else None
    return found.group(0).strip() if found else None


def without_pairing(text: str) -> str:
    """`text` without a jupytext `formats:` pairing in its front matter (the rest kept)."""
    m = _FRONT_RE.match(text)
    if not m:
        return text
    block = _PAIRING_RE.sub("", m.group("yaml") + "\n").rstrip("\n")
    return text[: m.start("yaml")] + block + text[m.end("yaml") :]


def source_path(page: Page, repo: Path = REPO) -> Path:
    return repo / "book" / f"{page.docname}.md"


def notebook_path(page: Page, repo: Path = REPO) -> Path:
    return repo / "book" / f"{page.docname}.ipynb"


# --------------------------------------------------------------------------- the Colab edition


def base_url(repo: Path = REPO) -> str:
    """The hosted book's address, ending in "/": `html: baseurl:` in _config.yml, or else the
    GitHub Pages address of the repository (https://ORG.github.io/REPO/)."""
    configured = str((load_config(repo).get("html") or {}).get("baseurl") or "").strip()
    if configured:
        return configured.rstrip("/") + "/"
    url, _, _ = repository(repo)
    m = re.match(r"^https?://github\.com/([^/]+)/([^/]+)$", url)
    if not m:
        raise SystemExit(
            f"{repo / '_config.yml'}: cannot tell where the book is hosted from `repository: url: {url}`;"
            " set `html: baseurl:`"
        )
    org, name = m.groups()
    if name.lower() == f"{org.lower()}.github.io":
        return f"https://{name}/"
    return f"https://{org}.github.io/{name}/"


def raw_url(repo: Path = REPO) -> str:
    """Where the repository's files are served at the configured branch, ending in "/"."""
    url, branch, _ = repository(repo)
    m = re.match(r"^https?://github\.com/([^/]+/[^/]+)$", url)
    return f"https://raw.githubusercontent.com/{m.group(1)}/{branch}/" if m else f"{url}/raw/{branch}/"


def box_titles(repo: Path = REPO) -> dict[str, str]:
    """The book's boxes and their titles: `BOX_TITLES` of book/_ext/book_boxes.py (read, not
    imported, so that no Sphinx is needed here)."""
    path = repo / "book" / "_ext" / "book_boxes.py"
    if not path.exists():
        return {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "BOX_TITLES" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def load_book(repo: Path = REPO) -> colab_edition.Book:
    """What the Colab edition needs to know about the whole book (pages, labels, references)."""
    config = load_config(repo)
    pages = {}
    for page in toc_pages(repo):
        md = source_path(page, repo)
        if md.exists():
            pages[page.docname] = colab_edition.scan_page(page.docname, md.read_text(encoding="utf-8"))
    bib_files = config.get("bibtex_bibfiles") or []
    bib: dict = {}
    for name in bib_files:
        path = repo / "book" / name
        if path.exists():
            bib.update(colab_edition.read_bib(path.read_text(encoding="utf-8")))
    _, _, path_to_book = repository(repo)
    return colab_edition.Book(
        base_url=base_url(repo),
        raw_url=raw_url(repo),
        path_to_book=path_to_book,
        title=str(config.get("title", "")),
        pages=pages,
        bib=bib,
        box_titles=box_titles(repo),
        substitutions=dict((config.get("parse") or {}).get("myst_substitutions") or {}),
    )


def colab_notebook(
    page: Page, repo: Path = REPO, book: colab_edition.Book | None = None, text: str | None = None
) -> str:
    """The text of `book/<chapter>.ipynb` as this script writes it now.

    Raises:
        colab_edition.ColabError: the chapter uses MyST the Colab edition cannot translate.
    """
    book = book or load_book(repo)
    md = source_path(page, repo)
    text = md.read_text(encoding="utf-8") if text is None else text
    fm = front_matter(text) or {}
    if fm.get("substitutions"):
        book = colab_edition.Book(
            **{**vars(book), "substitutions": {**book.substitutions, **fm["substitutions"]}}
        )
    kernelspec = fm.get("kernelspec") or {"display_name": "Python 3", "language": "python", "name": "python3"}
    where = md.relative_to(repo).as_posix()
    return colab_edition.notebook(page.docname, text, book, where, INSTALL_TAG, kernelspec)


def _sync(repo: Path, check: bool, pages: list[Page] | None) -> tuple[list[str], list[str]]:
    """(problems, files written)."""
    book = load_book(repo)
    problems: list[str] = []
    written: list[str] = []
    for page in pages if pages is not None else chapter_pages(repo):
        md = source_path(page, repo)
        rel = md.relative_to(repo).as_posix()
        if not md.exists():
            problems.append(f"{rel}: missing (listed in _toc.yml)")
            continue
        text = md.read_text(encoding="utf-8")
        new = with_install_cell(without_pairing(text), repo)
        if new != text:
            if check:
                problems.append(
                    f"{rel}: the Colab install cell or the front matter (a jupytext `formats:` pairing) "
                    "is out of date"
                )
            else:
                md.write_text(new, encoding="utf-8")
                written.append(rel)
        try:
            nb = colab_notebook(page, repo, book, new)
        except colab_edition.ColabError as err:
            problems.append(f"{err}\n  (book/{page.docname}.ipynb was not written)")
            continue
        nb_path = notebook_path(page, repo)
        nb_rel = nb_path.relative_to(repo).as_posix()
        current = nb_path.read_text(encoding="utf-8") if nb_path.exists() else None
        if current == nb:
            continue
        if check:
            problems.append(
                f'{nb_rel}: missing (the chapter\'s "Open in Colab" button links to it)'
                if current is None
                else f"{nb_rel}: out of step with {md.name} (it is not what scripts/sync_notebooks.py writes now)"
            )
        else:
            nb_path.write_text(nb, encoding="utf-8")
            written.append(nb_rel)
    return problems, written


def sync(repo: Path = REPO, check: bool = False, pages: list[Page] | None = None) -> list[str]:
    """Bring every chapter's install cell, front matter and Colab notebook up to date.

    With ``check=True`` nothing is written and the return value lists what is out of date;
    otherwise it lists what could not be written (a chapter the translation cannot handle).
    """
    return _sync(repo, check, pages)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report what is out of date, change nothing")
    parser.add_argument(
        "--hook",
        nargs="*",
        metavar="FILE",
        help="pre-commit mode: write every chapter's notebook; exit 1 if a file changed (FILEs ignored)",
    )
    args = parser.parse_args(argv)
    problems, written = _sync(REPO, args.check, None)
    for rel in written:
        print(f"wrote {rel}")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        if args.check:
            print(
                "Run `python scripts/sync_notebooks.py` and commit the chapters and their .ipynb files.",
                file=sys.stderr,
            )
        return 1
    if args.hook is not None and written:
        print("The Colab notebooks changed: add them and commit again.", file=sys.stderr)
        return 1
    if not written:
        print("every chapter's Colab notebook is in step:", ", ".join(p.docname for p in chapter_pages()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
