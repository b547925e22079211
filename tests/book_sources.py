"""Reading the book's MyST sources without building it: the table of contents, the glossary,
{term} links, exercises, and the prose of a chapter (code, math and markup masked out).

Used by test_glossary.py, test_exercise_list.py and test_references.py. Positions are kept:
masked characters become spaces, so an offset in the masked text is an offset in the file.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
sys.path.insert(0, str(REPO / "scripts"))
import sync_notebooks as sn  # noqa: E402  (the one reader of _toc.yml)

# --------------------------------------------------------------------------- table of contents
# Which pages are chapters is decided in one place, scripts/sync_notebooks.py (`toc_pages`):
# every toc page outside a part captioned "Appendi…", the root page excluded.


def chapters() -> list[Path]:
    """The source of every chapter in _toc.yml, in order."""
    return [sn.source_path(p, REPO) for p in sn.chapter_pages(REPO)]


def all_pages() -> list[Path]:
    """The source of every page in _toc.yml (root, chapters, appendices)."""
    return [sn.source_path(p, REPO) for p in sn.toc_pages(REPO)]


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


# --------------------------------------------------------------------------- glossary


@dataclass
class Entry:
    names: list[str]  # every term of the entry (e.g. ["MSE", "mean squared error"])
    line: int
    definition: str


def glossary_entries(path: Path = BOOK / "glossary.md") -> list[Entry]:
    """The entries of the ``{glossary}`` directive: unindented term lines, indented definitions."""
    lines = path.read_text(encoding="utf8").splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"^(`{3,}|:{3,})\{glossary\}", ln)), None)
    if start is None:
        raise AssertionError(f"{rel(path)} has no ```{{glossary}} directive")
    fence = re.match(r"^(`{3,}|:{3,})", lines[start]).group(1)
    entries: list[Entry] = []
    pending: list[tuple[str, int]] = []
    for i in range(start + 1, len(lines)):
        ln = lines[i]
        if ln.startswith(fence) and ln.strip() == fence:
            break
        if not ln.strip() or (not entries and not pending and ln.startswith(":")):
            continue
        if ln[0].isspace():
            if pending:
                entries.append(Entry([n for n, _ in pending], pending[0][1], ln.strip()))
                pending = []
            elif entries:
                entries[-1].definition += " " + ln.strip()
        else:
            if entries and not pending and not entries[-1].definition:
                raise AssertionError(f"{rel(path)}:{i + 1}: the term above has no definition")
            pending.append((ln.strip(), i + 1))
    if pending:
        names = ", ".join(n for n, _ in pending)
        raise AssertionError(f"{rel(path)}:{pending[0][1]}: term(s) {names} have no indented definition")
    return entries


def norm_term(name: str) -> str:
    """Sphinx matches glossary terms case-insensitively, with whitespace collapsed."""
    return " ".join(name.split()).lower()


# --------------------------------------------------------------------------- roles and prose

ROLE = re.compile(r"\{([\w:+-]+)\}`([^`]*)`")
# Directives whose body is not prose a reader sees as the chapter's text.
NON_PROSE = {
    "code-cell",
    "code",
    "code-block",
    "math",
    "eval-rst",
    "raw",
    "bibliography",
    "glossary",
    "toctree",
    "glue:figure",
    "glue:math",
}


@dataclass
class TermLink:
    target: str  # normalised glossary term
    text: str  # what the reader sees
    pos: int


def role_target(content: str) -> str:
    m = re.match(r"^(.*?)\s*<([^<>]+)>\s*$", content, flags=re.DOTALL)
    return m.group(2) if m else content


def term_links(text: str) -> list[TermLink]:
    out = []
    for m in ROLE.finditer(text):
        if m.group(1) == "term":
            out.append(TermLink(norm_term(role_target(m.group(2))), m.group(2), m.start()))
    return out


def _blank(s: str) -> str:
    return re.sub(r"[^\n]", " ", s)


def prose(text: str) -> str:
    """``text`` with everything but the reader-visible prose replaced by spaces.

    Masked: front matter, code cells and other non-prose directives, directive lines and their
    options, headings, labels, HTML comments, math, inline code, roles (including {term}
    links) and link targets.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    if lines and lines[0].strip() == "---":  # front matter
        end = next((j for j in range(1, len(lines)) if lines[j].strip() == "---"), 0)
        out.extend(_blank(ln) for ln in lines[: end + 1])
        i = end + 1
    open_prose: list[str] = []  # fences of the prose directives we are inside
    while i < len(lines):
        ln = lines[i]
        m = re.match(r"^\s*(`{3,}|~{3,}|:{3,})\s*(\{([^}]*)\})?(.*)$", ln)
        if m and open_prose and ln.strip() == m.group(1) and m.group(1).startswith(open_prose[-1]):
            open_prose.pop()  # the closing fence of a prose directive
            out.append(_blank(ln))
            i += 1
            continue
        if m and m.group(1)[0] == ":" and not m.group(2):
            m = None  # a line of colons that is not a directive
        if m:
            fence, directive = m.group(1), m.group(3)
            code = directive is None or directive in NON_PROSE
            if not code:
                open_prose.append(fence)
            out.append(_blank(ln))
            i += 1
            if code:  # mask up to the closing fence
                while i < len(lines) and not (
                    lines[i].strip().startswith(fence[0] * len(fence)) and set(lines[i].strip()) == {fence[0]}
                ):
                    out.append(_blank(lines[i]))
                    i += 1
                if i < len(lines):
                    out.append(_blank(lines[i]))
                    i += 1
                continue
            # a prose directive: mask its options (":key: value" lines or a --- block)
            if i < len(lines) and lines[i].strip() == "---":
                out.append(_blank(lines[i]))
                i += 1
                while i < len(lines) and lines[i].strip() != "---":
                    out.append(_blank(lines[i]))
                    i += 1
                if i < len(lines):
                    out.append(_blank(lines[i]))
                    i += 1
            while i < len(lines) and re.match(r"^\s*:[\w-]+:", lines[i]):
                out.append(_blank(lines[i]))
                i += 1
            continue
        if re.match(r"^\s{0,3}#{1,6}\s", ln) or re.match(r"^\s*\([^)]*\)=\s*$", ln):
            out.append(_blank(ln))  # a heading or a label
        else:
            out.append(ln)
        i += 1
    masked = "\n".join(out)
    for pattern in (r"<!--.*?-->", r"\$\$.*?\$\$", r"(?<![\\$])\$[^$\n]+\$"):
        masked = re.sub(pattern, lambda mm: _blank(mm.group(0)), masked, flags=re.DOTALL)
    masked = ROLE.sub(lambda mm: _blank(mm.group(0)), masked)
    masked = re.sub(r"`[^`\n]*`", lambda mm: _blank(mm.group(0)), masked)
    masked = re.sub(r"\]\([^)\n]*\)", lambda mm: _blank(mm.group(0)), masked)
    assert len(masked) == len(text)
    return masked


def first_mention(prose_text: str, name: str, ignore: tuple[str, ...] = ()) -> int | None:
    """Offset of the first plain-text use of ``name`` (or its plural) in masked prose."""
    words = r"\s+".join(re.escape(w) for w in name.split())
    pattern = re.compile(rf"(?<![\w-]){words}(?:s|es)?(?![\w-])", flags=re.IGNORECASE)
    for m in pattern.finditer(prose_text):
        context = prose_text[max(0, m.start() - 40) : m.end() + 40].lower()
        if any(phrase in " ".join(context.split()) for phrase in ignore):
            continue
        return m.start()
    return None


# --------------------------------------------------------------------------- exercises


@dataclass
class Exercise:
    label: str | None
    classes: list[str]
    line: int
    title: str


def exercises(path: Path) -> list[Exercise]:
    """Every ``{exercise}`` and ``{exercise-start}`` directive, with its label and classes."""
    lines = path.read_text(encoding="utf8").splitlines()
    out = []
    for i, ln in enumerate(lines):
        m = re.match(r"^\s*(`{3,}|:{3,})\{(exercise|exercise-start)\}\s*(.*)$", ln)
        if not m:
            continue
        label, classes = None, []
        j = i + 1
        while j < len(lines) and re.match(r"^\s*:[\w-]+:", lines[j]):
            key, _, value = lines[j].strip()[1:].partition(":")
            if key == "label":
                label = value.strip()
            elif key == "class":
                classes = value.split()
            j += 1
        out.append(Exercise(label, classes, i + 1, m.group(3).strip()))
    return out
