"""The Colab edition of a chapter: MyST markdown in, a notebook of plain Markdown and code out.

`scripts/sync_notebooks.py` calls `notebook()` for every chapter and writes `book/<chapter>.ipynb`,
the file the theme's "Open in Colab" button opens. Colab renders CommonMark with HTML and math,
nothing of MyST, so every MyST construct is translated. The rules:

Text
- `{term}`text <target>`` and `{term}`text`` -> the text, plain.
- `{ref}`label`` -> the section's title (a figure's caption, an exercise's title); on the same
  page in italics, on another page a link to that section of the hosted book. An explicit
  `{ref}`text <label>`` keeps its text.
- `{numref}`fig-x`` -> "Figure N", N the figure's number in its page as Sphinx numbers it (the
  named figures of the page in order: code cells with `mystnb: figure: name:`, and `{figure}` and
  `{glue:figure}` directives with `:name:`); exercises give "Exercise N", tables "Table N",
  labelled equations "Equation (N)". `%s` or `{number}` in an explicit text is replaced by N.
- `{doc}`page`` -> the page's title, linked to the hosted page. `{eq}`label`` -> "(N)".
- `{cite:p}`a,b`` -> "(Author, Year; Author, Year)", `{cite:t}` -> "Author (Year)", from
  book/references.bib, each linked to the paper's `url` (or `doi`) when the entry has one.
- `{math}`x`` -> `$x$`; `$...$`, `$$...$$` stay (Colab renders them); a labelled `$$...$$ (label)`
  or `{math}` directive with `:label:` gets `\\tag{N}`.
- `{glue:text}`name:fmt`` (and `{glue}`, `{glue:}`, `{glue:any}`, `{glue:md}`) -> "`name`
  (printed above)" ("below", or "printed by the solution's code" when only a solution computes
  it). The notebook does not use myst-nb: a cell after the install cell defines `glue(name,
  value, display=True)`, which prints `name = <value>` formatted as the prose formats it (every
  format the chapter uses for that name), and shows a figure that a `{glue:figure}` places. So
  the number appears as the printed output of the cell that computes it.
- `{sub}`, `{sup}`, `{kbd}` -> HTML; `{abbr}`text (title)`` -> the text; `{download}` -> a link
  to the file on GitHub.
- Labels `(name)=`, MyST comments (`% ...`), HTML comments and `+++` cell breaks disappear.
  Links to other pages (`[text](page.md#anchor)`, `[text](#label)`) point at the hosted book;
  relative images at the file on GitHub. `{{ name }}` substitutions are filled in.

Blocks
- Boxes (`{what-you-should-see}`, `{core}`, `{stretch}`, titles from book/_ext/book_boxes.py),
  admonitions (`{note}`, `{tip}`, `{warning}`, `{admonition} Title`, ...), `{topic}`, `{margin}`,
  `{sidebar}` -> a block quote opening with the bold title: "> **What you should see.** ...".
  With `:class: dropdown`, and `{dropdown}`, -> a folded `<details>` block.
- `{raw} html` (the live widgets) -> a note that the live version is in the hosted book, with a
  link to the section. Other `{raw}` formats disappear.
- `{container}`: its content, except a container whose class ends in "fallback" (what a page
  shows where the live widget cannot run): in Colab it would only repeat the note, so it goes.
- `{figure}`, `{image}` -> a Markdown image of the file on GitHub (and the caption);
  `{math}` -> `$$...$$`; `{code-block}`/`{code}` -> a fenced code block; `{table}` -> its caption
  and table; sphinx-design cards, grids and tabs -> their content (titles in bold).
- A figure cell (`mystnb: figure:`) is followed by a Markdown cell "*Figure N: caption*".
  `{glue:figure}` becomes that line, saying the figure is shown under the cell that computes it.

Exercises and solutions
- `{exercise}` and the gated `{exercise-start}`/`{exercise-end}` -> a Markdown heading
  "Exercise N: title (core)" (one level below the section it sits in) and the exercise text; the
  code cells inside stay code cells, without their tags (the stub a learner fills in, tagged
  `skip-execution` in the book, is an ordinary cell here: it ends with a checker from
  `toy_lib.exercises`, which prints "not attempted yet" while the TODO raises
  NotImplementedError, so "Run all" runs to the end; scripts/check_chapters.py enforces it).
- `{solution}` and the gated `{solution-start}`/`{solution-end}` -> one Markdown cell,
  `<details><summary>Solution</summary> ... </details>`: the prose, and each code cell as a
  fenced Python block. Solutions are read, never run, before the learner has tried.

Notebook
- The chapter's install cell (written by sync_notebooks.py) is the first code cell, tags kept.
  `from myst_nb import glue` is dropped from the code; any other use of myst_nb is an error.
- Markdown cells break at every heading, so Colab's table of contents folds by section. A short
  note under the title says what the Colab edition is and how numbers and solutions appear.
- Cell ids are `<chapter>-<position>`: an unchanged chapter gives a byte-identical notebook.

Anything else (an unknown role or directive, a reference to an unknown label or citation key)
raises `ColabError` naming the file, the line and what to do, so a chapter never reaches Colab
with raw MyST in it.
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from dataclasses import dataclass, field, replace

import yaml

# --------------------------------------------------------------------------- errors


class ColabError(ValueError):
    """A construct of a chapter that the Colab edition cannot translate (the message says where)."""


def _fail(where: str, line: int, message: str) -> ColabError:
    return ColabError(f"{where}:{line}: {message}")


# --------------------------------------------------------------------------- reading MyST blocks

_OPEN_RE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE_RE = re.compile(r"^\{(?P<name>[\w:.+-]+)\}\s*(?P<arg>.*)$")
_OPTION_RE = re.compile(r"^:(?P<key>[\w-]+):(?:[ \t]+(?P<value>.*))?\s*$")
_FRONT_RE = re.compile(r"\A---\n.*?\n---[ \t]*\n", re.DOTALL)


@dataclass
class Block:
    """One top-level piece of a MyST document.

    ``kind`` is "text" (Markdown lines), "fence" (a plain fenced code block, verbatim),
    "directive", "cell" (a ```{code-cell}```) or "break" (a `+++` line).
    """

    kind: str
    line: int  # the 1-based line of the block's first line in the file
    text: str = ""  # text and fence: the lines themselves
    name: str = ""  # directive: its name
    arg: str = ""  # directive: its argument; cell: its language
    options: dict = field(default_factory=dict)
    body: str = ""  # directive: its content; cell: its code
    body_line: int = 0  # the line of the body's first line

    @property
    def tags(self) -> list[str]:
        tags = self.options.get("tags") or []
        if isinstance(tags, str):
            try:
                tags = yaml.safe_load(tags)
            except yaml.YAMLError:
                tags = re.findall(r"[\w-]+", tags)
        return [str(t) for t in tags] if isinstance(tags, list) else []


def _closes(line: str, fence: str) -> bool:
    s = line.strip()
    return len(s) >= len(fence) and s == fence[0] * len(s) and len(line) - len(line.lstrip(" ")) <= 3


def _options(lines: list[str]) -> tuple[dict, int]:
    """A directive's options (a `---` YAML block, or `:key: value` lines) and how many lines."""
    if lines and lines[0].strip() == "---":
        end = next((k for k in range(1, len(lines)) if lines[k].strip() == "---"), None)
        if end is not None:
            try:
                data = yaml.safe_load("\n".join(lines[1:end])) or {}
            except yaml.YAMLError:
                data = {}
            return (data if isinstance(data, dict) else {}), end + 1
    options: dict = {}
    k = 0
    while k < len(lines):
        m = _OPTION_RE.match(lines[k])
        if not m:
            break
        options[m.group("key")] = (m.group("value") or "").strip()
        k += 1
    return options, k


def _strip_blank(lines: list[str]) -> tuple[list[str], int]:
    """``lines`` without leading and trailing blank lines, and how many leading ones went."""
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end], start


def blocks(text: str, first_line: int = 1) -> list[Block]:
    """Split MyST markdown into blocks (front matter, if any, skipped)."""
    m = _FRONT_RE.match(text)
    if m and first_line == 1:
        first_line += m.group(0).count("\n")
        text = text[m.end() :]
    lines = text.split("\n")
    out: list[Block] = []
    buf: list[str] = []
    buf_line = first_line

    def flush() -> None:
        nonlocal buf
        if buf and any(ln.strip() for ln in buf):
            out.append(Block("text", buf_line, text="\n".join(buf)))
        buf = []

    i = 0
    while i < len(lines):
        line = lines[i]
        m = _OPEN_RE.match(line)
        info = m.group("info").strip() if m else ""
        if m and not (m.group("fence")[0] == "`" and "`" in info):
            fence = m.group("fence")
            d = _DIRECTIVE_RE.match(info)
            if fence[0] != ":" or d:
                j = i + 1
                while j < len(lines) and not _closes(lines[j], fence):
                    j += 1
                flush()
                if d is None:
                    out.append(Block("fence", first_line + i, text="\n".join(lines[i : j + 1])))
                else:
                    content = lines[i + 1 : j]
                    options, n = _options(content)
                    body, skipped = _strip_blank(content[n:])
                    name = d.group("name")
                    out.append(
                        Block(
                            "cell" if name == "code-cell" else "directive",
                            first_line + i,
                            name=name,
                            arg=d.group("arg").strip(),
                            options=options,
                            body="\n".join(body),
                            body_line=first_line + i + 1 + n + skipped,
                        )
                    )
                i = j + 1
                buf_line = first_line + i
                continue
        if line.startswith("+++"):
            flush()
            out.append(Block("break", first_line + i))
            i += 1
            buf_line = first_line + i
            continue
        if not buf:
            buf_line = first_line + i
        buf.append(line)
        i += 1
    flush()
    return out


def walk(items: list[Block]):
    """Every block, and the blocks inside directives whose content is Markdown, in order."""
    for b in items:
        yield b
        if b.kind == "directive" and b.name not in _VERBATIM:
            yield from walk(blocks(b.body, b.body_line))


# --------------------------------------------------------------------------- what a page holds

_LABEL_RE = re.compile(r"^\((?P<label>[^()\s]+)\)=\s*$")
_HEADING_RE = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>.*?)(?:[ \t]+#+)?[ \t]*$")
_DOLLAR_LABEL_RE = re.compile(r"\$\$[ \t]*\((?P<label>[\w.:-]+)\)[ \t]*$", re.MULTILINE)
_DROPPED = "\x00"
_GLUE_CALL_RE = re.compile(r"\bglue\(\s*(?P<q>['\"])(?P<name>[^'\"]+)(?P=q)")
_GLUE_ROLES = {"glue", "glue:", "glue:any", "glue:text", "glue:md", "glue:math"}
_GLUE_DIRECTIVES = {"glue", "glue:", "glue:any", "glue:figure", "glue:md", "glue:math"}
#: Directives whose content is not Markdown.
_VERBATIM = {"raw", "math", "code-block", "code", "sourcecode", "code-cell", "glossary", "bibliography"}


@dataclass
class Target:
    """Something a role can point at."""

    docname: str
    anchor: str  # the HTML id on the hosted page
    kind: str  # "section", "figure", "table", "exercise", "equation", "other"
    title: str | None = None  # section title, figure caption, exercise title
    number: int | None = None


@dataclass
class Page:
    """What one page holds, as far as references into it go."""

    docname: str
    title: str
    targets: dict[str, Target]
    exercises: dict[str, Target]  # by label, in order
    glue_cells: dict[str, set[str]]  # glued name -> where: {"code", "solution"}


def make_id(text: str) -> str:
    """The HTML id docutils makes from a label or a title."""
    from docutils.nodes import make_id as docutils_make_id

    return docutils_make_id(text)


def option_classes(b: Block) -> list[str]:
    return (b.arg + " " + str(b.options.get("class", ""))).split()


def _caption(value) -> str:
    return " ".join(str(value or "").split())


def scan_page(docname: str, text: str) -> Page:
    """The labels, numbered things and glue calls of one page (lenient: never raises)."""
    top = blocks(text)
    title = ""
    targets: dict[str, Target] = {}
    exercises: dict[str, Target] = {}
    glue_cells: dict[str, set[str]] = {}
    counts = {"figure": 0, "table": 0, "exercise": 0, "equation": 0}

    def number(kind: str) -> int:
        counts[kind] += 1
        return counts[kind]

    in_solution = False
    for b in walk(top):
        if b.kind == "text":
            lines = b.text.split("\n")
            for k, line in enumerate(lines):
                h = _HEADING_RE.match(line)
                if h and not title and len(h.group("hashes")) == 1:
                    title = h.group("title")
                lm = _LABEL_RE.match(line)
                if lm:
                    label = lm.group("label")
                    nxt = next((ln for ln in lines[k + 1 :] if ln.strip()), "")
                    hh = _HEADING_RE.match(nxt)
                    targets[label] = Target(
                        docname,
                        make_id(label),
                        "section" if hh else "other",
                        hh.group("title") if hh else None,
                    )
            for dm in _DOLLAR_LABEL_RE.finditer(b.text):
                label = dm.group("label")
                targets[label] = Target(docname, make_id(label), "equation", None, number("equation"))
        elif b.kind == "cell":
            kind = "solution" if in_solution else "code"
            for gm in _GLUE_CALL_RE.finditer(b.body):
                glue_cells.setdefault(gm.group("name"), set()).add(kind)
            fig = (
                (b.options.get("mystnb") or {}).get("figure")
                if isinstance(b.options.get("mystnb"), dict)
                else None
            )
            if isinstance(fig, dict) and fig.get("name"):
                name = str(fig["name"])
                targets[name] = Target(
                    docname, make_id(name), "figure", _caption(fig.get("caption")), number("figure")
                )
        elif b.kind == "directive":
            if b.name in ("solution-start", "solution"):
                in_solution = b.name == "solution-start"
            elif b.name == "solution-end":
                in_solution = False
            elif b.name in ("figure", "glue:figure") and b.options.get("name"):
                name = b.options["name"]
                targets[name] = Target(
                    docname, make_id(name), "figure", _caption(b.body.split("\n\n")[0]), number("figure")
                )
            elif b.name in ("table", "list-table") and b.options.get("name"):
                name = b.options["name"]
                targets[name] = Target(docname, make_id(name), "table", _caption(b.arg), number("table"))
            elif b.name == "math" and b.options.get("label"):
                label = b.options["label"]
                targets[label] = Target(docname, make_id(label), "equation", None, number("equation"))
            elif b.name in ("exercise", "exercise-start"):
                label = b.options.get("label", "")
                n = None if "nonumber" in b.options else number("exercise")
                target = Target(docname, make_id(label) if label else "", "exercise", _caption(b.arg), n)
                if label:
                    targets[label] = exercises[label] = target
                else:
                    exercises[f"#{len(exercises)}"] = target
            elif b.options.get("name"):  # a box or an admonition with a name
                name = b.options["name"]
                targets.setdefault(name, Target(docname, make_id(name), "other", _caption(b.arg) or None))
    return Page(docname, title or docname, targets, exercises, glue_cells)


# --------------------------------------------------------------------------- references.bib


def read_bib(text: str) -> dict[str, dict[str, str]]:
    """Entries of a BibTeX file: key -> {field: value} (braces kept in values)."""
    entries: dict[str, dict[str, str]] = {}
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        if m.group(1).lower() in ("comment", "string", "preamble"):
            continue
        fields: dict[str, str] = {}
        i = m.end()
        while i < len(text):
            fm = re.compile(r"\s*(\w[\w-]*)\s*=\s*").match(text, i)
            if not fm:
                break
            i = fm.end()
            if text[i] == "{":
                depth, j = 0, i
                while j < len(text):
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    if depth == 0:
                        break
                    j += 1
                value, i = text[i + 1 : j], j + 1
            elif text[i] == '"':
                j = text.index('"', i + 1)
                value, i = text[i + 1 : j], j + 1
            else:
                vm = re.compile(r"[^,}\s]+").match(text, i)
                value, i = vm.group(0), vm.end()
            fields[fm.group(1).lower()] = value
            sm = re.compile(r"\s*,?").match(text, i)
            i = sm.end()
            if i < len(text) and text[i] == "}":
                break
        entries[m.group(2)] = fields
    return entries


_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "c": "\u0327"}


def _latex_text(value: str) -> str:
    """BibTeX text as plain text: accents composed, braces dropped, spaces collapsed."""
    value = re.sub(
        r"\\([`'^\"~c])\s*\{?([A-Za-z])\}?",
        lambda m: unicodedata.normalize("NFC", m.group(2) + _ACCENTS[m.group(1)]),
        value,
    )
    return " ".join(value.replace("{", "").replace("}", "").split())


def cite_label(entry: dict[str, str]) -> tuple[str, str]:
    """("Elhage et al.", "2022") as sphinxcontrib-bibtex's author_year style names an entry."""
    people = [p.strip() for p in re.split(r"\s+and\s+", _latex_text(entry.get("author", ""))) if p.strip()]
    last = []
    for p in people:
        if p.lower() == "others":
            last.append("others")
        else:
            last.append(p.split(",", 1)[0].strip() if "," in p else p.split()[-1])
    if not last:
        names = _latex_text(entry.get("title", "Anonymous"))
    elif len(last) == 1:
        names = last[0]
    elif len(last) == 2 and last[1] != "others":
        names = f"{last[0]} and {last[1]}"
    else:
        names = f"{last[0]} et al."
    return names, _latex_text(entry.get("year", "n.d."))


def cite_url(entry: dict[str, str]) -> str | None:
    if entry.get("url"):
        return entry["url"].strip()
    if entry.get("doi"):
        return "https://doi.org/" + entry["doi"].strip()
    return None


# --------------------------------------------------------------------------- the book


@dataclass
class Book:
    """Everything about the book the translation needs besides the chapter itself."""

    base_url: str  # the hosted book, ending in "/"
    raw_url: str  # the repository's files on GitHub at the branch, ending in "/"
    path_to_book: str  # "book"
    title: str  # the book's title
    pages: dict[str, Page]  # every page of the toc, by docname
    bib: dict[str, dict[str, str]]
    box_titles: dict[str, str]
    substitutions: dict[str, str] = field(default_factory=dict)

    def target(self, label: str) -> Target | None:
        """What ``label`` names, on whichever page defines it (Sphinx labels are book-wide)."""
        for page in self.pages.values():
            if label in page.targets:
                return page.targets[label]
        return None

    def page_url(self, docname: str, anchor: str = "") -> str:
        return f"{self.base_url}{docname}.html" + (f"#{anchor}" if anchor else "")

    def file_url(self, docname: str, path: str) -> str:
        """The URL on GitHub of a file a page refers to by a path relative to itself."""
        prefix = f"{self.path_to_book}/" if self.path_to_book else ""
        return self.raw_url + prefix + resolve(docname, path)


def resolve(docname: str, path: str) -> str:
    """A path written in page ``docname``, relative to the book's folder: relative to the page's
    own folder, or to the book's folder when it starts with "/" (as Sphinx reads paths)."""
    folder = docname.rsplit("/", 1)[0] + "/" if "/" in docname else ""
    parts: list[str] = []
    for part in (path.lstrip("/") if path.startswith("/") else folder + path).split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


# --------------------------------------------------------------------------- the translation

_ROLE_TEXT_RE = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>\s*$", re.DOTALL)
_INLINE_RE = re.compile(
    r"(?P<role>\{(?P<name>[A-Za-z][\w:+.-]*)\})?(?P<ticks>`+)(?P<body>(?:(?!\n[ \t]*\n).)+?)(?<!`)(?P=ticks)(?!`)"
    r"|(?P<bang>!?)\[(?P<ltext>[^\]\n]*)\]\((?P<ltarget>[^)\s]+)\)"
    r"|\{\{\s*(?P<sub>[\w.-]+)\s*\}\}",
    re.DOTALL,
)
_ADMONITIONS = {
    "note": "Note",
    "tip": "Tip",
    "hint": "Hint",
    "important": "Important",
    "warning": "Warning",
    "caution": "Caution",
    "attention": "Attention",
    "danger": "Danger",
    "error": "Error",
    "seealso": "See also",
    "margin": "Aside",
    "admonition": "",
    "sidebar": "",
    "topic": "",
}
_QUOTES = {"epigraph", "pull-quote", "highlights", "blockquote"}
_TRANSPARENT = {"div", "grid", "grid-item", "tab-set", "card-carousel"}
_TITLED = {"card", "grid-item-card", "tab-item", "rubric"}
_NON_PARAGRAPH = re.compile(r"^\s*([-*+]\s|\d+[.)]\s|#|>|```|~~~|\$\$|\||<)")
_INTRO_GLUE = "Numbers the book quotes from its run appear as names in code font, like `{example}`: the code cell that computes each prints it."


def _split_role(body: str) -> tuple[str | None, str]:
    m = _ROLE_TEXT_RE.match(body)
    return (m.group("text"), m.group("target").strip()) if m else (None, body.strip())


def quote(title: str, markdown: str) -> str:
    """A Markdown block quote opening with a bold title."""
    markdown = markdown.strip("\n")
    text = markdown
    if title:
        head = f"**{title}{'' if title[-1] in '.?!:' else '.'}**"
        first = markdown.split("\n", 1)[0] if markdown else ""
        if markdown and not _NON_PARAGRAPH.match(first):
            text = f"{head} {markdown}"
        else:
            text = head + (f"\n\n{markdown}" if markdown else "")
    return "\n".join(f"> {ln}" if ln.strip() else ">" for ln in text.split("\n"))


def details(summary: str, markdown: str) -> str:
    """A folded HTML block (Colab renders the Markdown inside it)."""
    return f"<details>\n<summary>{summary}</summary>\n\n{markdown.strip()}\n\n</details>"


def glue_shim(quoted: dict[str, list[str] | str]) -> str:
    """The code of the cell that stands in for myst_nb.glue in the Colab edition."""
    lines = [f"    {json.dumps(name)}: {json.dumps(spec)}," for name, spec in sorted(quoted.items())]
    table = "{\n" + "\n".join(lines) + "\n}" if lines else "{}"
    return f'''\
# The book quotes numbers from this notebook's run in its text (with myst-nb's `glue`). Here
# `glue` prints each quoted number where it is computed, formatted as the text quotes it, and
# shows the figures the text places. Written by scripts/sync_notebooks.py.
from IPython.display import display as _display

_QUOTED = {table}


def glue(name, value, display=True):
    """Print a number the text quotes (``name = value``); show a figure it places."""
    quoted = _QUOTED.get(name)
    if quoted == "display" or (quoted is None and display):
        _display(value)
        if hasattr(value, "savefig"):  # a matplotlib figure: shown once, not again at the end
            import matplotlib.pyplot as plt

            plt.close(value)
    elif quoted is not None:
        shown = []
        for spec in quoted:
            try:
                shown.append(format(value, spec))
            except (TypeError, ValueError):
                shown.append(str(value))
        print(f"{{name}} =", ", ".join(dict.fromkeys(shown)))'''


@dataclass
class _Cell:
    kind: str  # "markdown" or "code"
    source: str
    metadata: dict = field(default_factory=dict)


class Chapter:
    """The translation of one chapter; `notebook()` is the way in."""

    def __init__(self, docname: str, text: str, book: Book, where: str):
        self.page = scan_page(docname, text)  # the text as given, which may be newer than on disk
        self.docname, self.text, self.where = docname, text, where
        self.book = replace(book, pages={**book.pages, docname: self.page})
        self.cells: list[_Cell] = []
        self.parts: list[str] = []  # Markdown of the cell being written
        self.quoted: dict[str, list[str] | str] = {}
        self.glued_so_far: set[str] = set()
        self.heading_level = 2
        self.section_anchor = ""
        self.exercise_number = 0
        self.glue_import = False

    # ..................................................................... inline text

    def _where_glued(self, name: str) -> str:
        if name in self.glued_so_far:
            return "above"
        sites = self.page.glue_cells.get(name, set())
        if "code" in sites:
            return "below"
        if sites:
            return "by the solution's code"
        return "by the chapter's code"

    def _link(self, text: str, target: Target) -> str:
        if target.docname == self.docname:
            return text
        return f"[{text}]({self.book.page_url(target.docname, target.anchor)})"

    def _target(self, label: str, line: int, role: str) -> Target:
        target = self.page.targets.get(label) or self.book.target(label)
        if target is None:
            raise _fail(
                self.where,
                line,
                f"{{{role}}}`{label}`: no page of the book has the label {label!r} "
                "(a `(label)=` line, a figure's `name:`, an exercise's `:label:`).",
            )
        return target

    def _role(self, name: str, body: str, line: int) -> str:
        body = " ".join(body.split())
        text, target = _split_role(body)
        if name == "term":
            return text or target
        if name in _GLUE_ROLES:
            key, _, spec = target.partition(":")
            if "::" in target:
                doc, _, key = target.partition("::")
                key, _, _ = key.partition(":")
                page = doc.rsplit(".", 1)[0]
                title = self.book.pages[page].title if page in self.book.pages else page
                return f"`{key}` (a number from [{title}]({self.book.page_url(page)}))"
            if name == "glue:text":
                specs = self.quoted.setdefault(key, [])
                if isinstance(specs, list) and spec not in specs:
                    specs.append(spec)
            elif key not in self.quoted:
                self.quoted[key] = [""]
            return f"`{key}` (printed {self._where_glued(key)})"
        if name in ("ref", "numref"):
            t = self._target(target, line, name)
            if name == "numref":
                kind = {"figure": "Figure", "table": "Table", "exercise": "Exercise", "equation": "Equation"}
                if t.number is None or t.kind not in kind:
                    raise _fail(
                        self.where,
                        line,
                        f"{{numref}}`{target}`: {target!r} is not a numbered figure, table, exercise or equation.",
                    )
                number = f"({t.number})" if t.kind == "equation" else str(t.number)
                shown = (text or f"{kind[t.kind]} %s").replace("%s", number).replace("{number}", number)
                shown = shown.replace("{name}", t.title or "")
                if t.docname != self.docname:
                    shown += f" of *{self.book.pages[t.docname].title}*"
                return self._link(shown, t)
            shown = text or (self.inline(t.title, line) if t.title else "")
            if not shown:
                raise _fail(
                    self.where,
                    line,
                    f"{{ref}}`{target}`: the label has no title; write {{ref}}`text <{target}>`.",
                )
            if t.docname == self.docname:
                return shown if text else f"*{shown}*"
            return self._link(shown, t)
        if name == "doc":
            page = self._docname(target)
            if page not in self.book.pages:
                raise _fail(self.where, line, f"{{doc}}`{body}`: no page {page!r} in _toc.yml.")
            shown = text or self.inline(self.book.pages[page].title, line)
            if page == self.docname:
                return f"*{shown}*"
            return f"[{shown}]({self.book.page_url(page)})"
        if name in ("cite", "cite:p", "cite:t", "cite:ps", "cite:ts", "cite:year"):
            parts = []
            for key in [k.strip() for k in target.split(",") if k.strip()]:
                if key not in self.book.bib:
                    raise _fail(
                        self.where, line, f"{{{name}}}`{body}`: no entry {key!r} in book/references.bib."
                    )
                entry = self.book.bib[key]
                names, year = cite_label(entry)
                shown = (
                    year
                    if name == "cite:year"
                    else (f"{names} ({year})" if name in ("cite:t", "cite:ts") else f"{names}, {year}")
                )
                url = cite_url(entry)
                parts.append(f"[{shown}]({url})" if url else shown)
            if name in ("cite:t", "cite:ts"):
                return ", ".join(parts)
            if name == "cite:year":
                return "; ".join(parts)
            return "(" + "; ".join(parts) + ")"
        if name == "math":
            return f"${body}$"
        if name == "eq":
            t = self._target(target, line, name)
            return self._link(f"({t.number})", t)
        if name in ("sub", "sup", "kbd"):
            return f"<{name}>{body}</{name}>"
        if name == "abbr":
            return re.sub(r"\s*\([^()]*\)\s*$", "", body)
        if name == "download":
            return f"[{text or target}]({self.book.file_url(self.docname, target)})"
        raise _fail(
            self.where,
            line,
            f"the Colab edition has no translation for the role {{{name}}} ({{{name}}}`{body}`). "
            "Write it another way, or add a rule to scripts/colab_edition.py.",
        )

    def _docname(self, target: str) -> str:
        """The docname a {doc} role or a link names (extension and anchor dropped)."""
        target = target.split("#", 1)[0]
        for ext in (".md", ".ipynb"):
            if target.endswith(ext):
                target = target[: -len(ext)]
        return resolve(self.docname, target)

    def _link_target(self, target: str, line: int, image: bool) -> str:
        if re.match(r"^[a-z][\w+.-]*:", target):  # http:, mailto:, ...
            return target
        if image:
            return self.book.file_url(self.docname, target)
        if target.startswith("#"):
            t = self.book.target(target[1:])
            return (
                self.book.page_url(t.docname, t.anchor) if t else self.book.page_url(self.docname, target[1:])
            )
        path, _, anchor = target.partition("#")
        if path.endswith((".md", ".ipynb")):
            return self.book.page_url(self._docname(path), anchor)
        t = self.book.target(target)
        if t is not None:
            return self.book.page_url(t.docname, t.anchor)
        return self.book.file_url(self.docname, target)

    def inline(self, text: str, line: int) -> str:
        """Roles, links and substitutions of one piece of Markdown translated."""

        def one(m: re.Match) -> str:
            at = line + text.count("\n", 0, m.start())
            if m.group("sub"):
                key = m.group("sub")
                if key not in self.book.substitutions:
                    raise _fail(
                        self.where,
                        at,
                        f"{{{{ {key} }}}}: no such substitution (front matter `substitutions:`).",
                    )
                return str(self.book.substitutions[key])
            if m.group("ltarget") is not None:
                bang = m.group("bang")
                return f"{bang}[{self.inline(m.group('ltext'), at)}]({self._link_target(m.group('ltarget'), at, bool(bang))})"
            if m.group("role"):
                return self._role(m.group("name"), m.group("body"), at)
            return m.group(0)  # inline code stays as it is

        return _INLINE_RE.sub(one, text)

    def prose(self, text: str, line: int) -> str:
        """A text block: labels, comments and HTML comments dropped, inline MyST translated."""
        text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL)
        kept = []
        label = ""
        for ln in text.split("\n"):
            lm = _LABEL_RE.match(ln)
            if lm or ln.startswith("%"):
                label = make_id(lm.group("label")) if lm else label
                kept.append(_DROPPED)  # dropped after the translation, so line numbers hold
                continue
            h = _HEADING_RE.match(ln)
            if h:
                self.heading_level = len(h.group("hashes"))
                self.section_anchor = label or make_id(h.group("title"))
            if ln.strip():
                label = ""
            kept.append(ln)
        out = self.inline("\n".join(kept), line)
        out = "\n".join(ln.rstrip() for ln in out.split("\n") if ln != _DROPPED)
        out = _DOLLAR_LABEL_RE.sub(lambda m: self._tag(m.group("label")), out)
        return re.sub(r"\n{3,}", "\n\n", out)

    def _tag(self, label: str) -> str:
        t = self.page.targets.get(label)
        return f"\\tag{{{t.number}}} $$" if t and t.number else "$$"

    # ..................................................................... blocks

    def markdown(self, text: str, line: int) -> str:
        """Nested Markdown (the content of a directive), translated to one Markdown string."""
        out = []
        for b in blocks(text, line):
            out.append(self.block(b))
        return "\n\n".join(s for s in out if s.strip())

    def block(self, b: Block) -> str:
        if b.kind == "text":
            return self.prose(b.text, b.line)
        if b.kind == "fence":
            return b.text
        if b.kind == "break":
            return ""
        if b.kind == "cell":
            return "```python\n" + self.code(b) + "\n```"
        return self.directive(b)

    def directive(self, b: Block) -> str:
        name = b.name
        if name in self.book.box_titles or name in _ADMONITIONS:
            title = self.book.box_titles.get(name) or _ADMONITIONS.get(name, "")
            arg = self.inline(b.arg, b.line) if b.arg else ""
            if name in self.book.box_titles and arg:
                title = f"{title}: {arg}"
            elif not title:
                title = arg
            body = self.markdown(b.body, b.body_line)
            if "dropdown" in option_classes(b):
                return details(title or "More", body)
            return quote(title, body)
        if name == "dropdown":
            return details(self.inline(b.arg, b.line) or "More", self.markdown(b.body, b.body_line))
        if name in _QUOTES:
            return quote("", self.markdown(b.body, b.body_line))
        if name in _TRANSPARENT:
            return self.markdown(b.body, b.body_line)
        if name in _TITLED:
            title = self.inline(b.arg, b.line)
            body = self.markdown(b.body, b.body_line)
            return f"**{title}**\n\n{body}" if title else body
        if name == "container":
            if any(c.endswith("fallback") for c in option_classes(b)):
                return ""
            return self.markdown(b.body, b.body_line)
        if name == "raw":
            if b.arg.strip().lower() != "html":
                return ""
            url = self.book.page_url(self.docname, self.section_anchor)
            return quote(
                "Live in the book",
                f"This part of the chapter runs live in your browser in the [hosted book]({url}); "
                "open it there to use it.",
            )
        if name == "math":
            label = b.options.get("label")
            t = self.page.targets.get(label) if label else None
            tag = f" \\tag{{{t.number}}}" if t and t.number else ""
            return f"$$\n{b.body}{tag}\n$$"
        if name in ("code-block", "code", "sourcecode"):
            return f"```{b.arg.split()[0] if b.arg else ''}\n{b.body}\n```"
        if name in ("figure", "image"):
            alt = b.options.get("alt", "")
            image = f"![{alt}]({self.book.file_url(self.docname, b.arg)})"
            if name == "image" or not b.body.strip():
                return image
            caption = self.markdown(b.body, b.body_line)
            return image + "\n\n" + self.caption_line(b.options.get("name"), caption)
        if name in _GLUE_DIRECTIVES:
            key = b.arg.strip()
            if b.options.get("doc"):
                page = self._docname(b.options["doc"])
                title = self.book.pages[page].title if page in self.book.pages else page
                return f"*(Here the hosted book shows a figure from [{title}]({self.book.page_url(page)}).)*"
            self.quoted[key] = "display"
            shown = f"shown {self._where_glued(key)}, under the cell that computes `{key}`"
            caption = self.markdown(b.body, b.body_line) if b.body.strip() else ""
            if name == "glue:figure" and caption:
                return self.caption_line(b.options.get("name"), caption) + f" ({shown})"
            return f"*(The figure or value is {shown}.)*"
        if name == "table":
            caption = self.inline(b.arg, b.line)
            body = self.markdown(b.body, b.body_line)
            t = self.page.targets.get(b.options.get("name", ""))
            head = f"*Table {t.number}: {caption}*" if t and t.number else (f"*{caption}*" if caption else "")
            return f"{head}\n\n{body}" if head else body
        if name in ("exercise", "exercise-start"):
            return self.exercise_heading(b) + (
                "\n\n" + self.markdown(b.body, b.body_line) if b.body.strip() else ""
            )
        if name == "solution":
            return details("Solution", self.markdown(b.body, b.body_line))
        raise _fail(
            self.where,
            b.line,
            f"the Colab edition has no translation for the directive {{{name}}}. Use one it knows "
            "(see the top of scripts/colab_edition.py), or add a rule there.",
        )

    def caption_line(self, name: str | None, caption: str) -> str:
        caption = " ".join(caption.split())
        t = self.page.targets.get(name) if name else None
        if t is not None and t.number:
            return f"*Figure {t.number}: {caption}*"
        return f"*{caption}*"

    def exercise_heading(self, b: Block) -> str:
        classes = [c for c in option_classes(b) if c in ("core", "stretch")]
        number = None
        if "nonumber" not in b.options:  # numbered in order, as scan_page (and Sphinx) number them
            self.exercise_number += 1
            number = self.exercise_number
        title = self.inline(b.arg, b.line) if b.arg else ""
        head = "Exercise" + (f" {number}" if number else "") + (f": {title}" if title else "")
        if classes:
            head += f" ({classes[0]})"
        return "#" * min(self.heading_level + 1, 6) + " " + head

    # ..................................................................... code

    def code(self, b: Block) -> str:
        """A code cell's code, without the import of myst-nb's glue."""
        kept = []
        for k, ln in enumerate(b.body.split("\n")):
            if re.fullmatch(r"\s*from\s+myst_nb\s+import\s+glue\s*(#.*)?", ln):
                self.glue_import = True
                continue
            if re.search(r"\bmyst_nb\b", ln):
                raise _fail(
                    self.where,
                    b.body_line + k,
                    "the Colab edition installs no myst-nb and translates only "
                    "`from myst_nb import glue`; use that import and `glue(name, value, display=False)`.",
                )
            kept.append(ln)
        return "\n".join(_strip_blank(kept)[0])

    # ..................................................................... cells

    def flush(self) -> None:
        text = "\n\n".join(p.strip("\n") for p in self.parts if p.strip())
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
        if text:
            self.cells.append(_Cell("markdown", text))
        self.parts = []

    def add_markdown(self, markdown: str) -> None:
        """Markdown text, a new cell begun at each heading (outside fenced code)."""
        chunk: list[str] = []
        fence = ""
        for ln in markdown.split("\n"):
            m = re.match(r"^\s{0,3}(`{3,}|~{3,})", ln)
            if m and (not fence or ln.strip().startswith(fence)):
                fence = "" if fence else m.group(1)
            if not fence and _HEADING_RE.match(ln) and (chunk or self.parts):
                self.parts.append("\n".join(chunk))
                self.flush()
                chunk = []
            chunk.append(ln)
        self.parts.append("\n".join(chunk))

    def add_code(self, b: Block, metadata: dict | None = None) -> None:
        self.flush()
        code = self.code(b)
        for gm in _GLUE_CALL_RE.finditer(b.body):
            self.glued_so_far.add(gm.group("name"))
        if code.strip():
            self.cells.append(_Cell("code", code, metadata or {}))
        fig = b.options.get("mystnb") if isinstance(b.options.get("mystnb"), dict) else {}
        fig = fig.get("figure") if isinstance(fig, dict) else None
        if isinstance(fig, dict) and fig.get("caption"):
            caption = self.inline(_caption(fig.get("caption")), b.line)
            self.cells.append(_Cell("markdown", self.caption_line(fig.get("name"), caption)))

    def translate(self, install_tag: str) -> list[_Cell]:
        exercise: Block | None = None
        solution: list[str] | None = None
        solution_start = 0
        for b in blocks(self.text):
            if b.kind == "directive" and b.name == "exercise-start":
                self.flush()
                exercise = b
                self.add_markdown(self.exercise_heading(b))
            elif b.kind == "directive" and b.name == "exercise-end":
                if exercise is None:
                    raise _fail(self.where, b.line, "{exercise-end} without an {exercise-start} above it.")
                exercise = None
                self.flush()
            elif b.kind == "directive" and b.name == "solution-start":
                self.flush()
                solution, solution_start = [], b.line
            elif b.kind == "directive" and b.name == "solution-end":
                if solution is None:
                    raise _fail(self.where, b.line, "{solution-end} without a {solution-start} above it.")
                self.cells.append(
                    _Cell(
                        "markdown",
                        details("Solution", "\n\n".join(s.strip("\n") for s in solution if s.strip())),
                    )
                )
                solution = None
            elif solution is not None:
                solution.append(self.block(b))
            elif b.kind == "cell":
                tags = b.tags
                if install_tag in tags:
                    self.add_code(b, {"tags": tags})
                    self.add_glue_cell()
                else:
                    self.add_code(b)
            elif b.kind == "break":
                self.flush()
            elif b.kind == "directive" and b.name in ("exercise", "solution"):
                self.flush()
                self.add_markdown(self.directive(b))
                self.flush()
            else:
                self.add_markdown(self.block(b))
        if exercise is not None:
            raise _fail(self.where, exercise.line, "this {exercise-start} has no {exercise-end}.")
        if solution is not None:
            raise _fail(self.where, solution_start, "this {solution-start} has no {solution-end}.")
        self.flush()
        return self.cells

    def add_glue_cell(self) -> None:
        """The stand-in for myst_nb.glue, right after the install cell (filled in at the end)."""
        self.cells.append(_Cell("code", "", {"glue": True}))


def _intro(chapter: Chapter, book: Book) -> str:
    url = book.page_url(chapter.docname)
    lines = [
        f"This notebook is the Colab edition of the chapter [{chapter.page.title}]({url}) of "
        f"*{book.title}*, generated from `{chapter.where}`. Run the cells from the top; "
        "Runtime → Run all runs to the end."
    ]
    if chapter.quoted:
        example = next(iter(k for k, v in chapter.quoted.items() if v != "display"), None)
        if example:
            lines.append(_INTRO_GLUE.format(example=example))
    if chapter.page.exercises:
        lines.append(
            "In an exercise, replace the `TODO` and run the cell: its checker says whether your "
            'code is right (until you try, it prints "not attempted yet"). Each solution is '
            "folded under **Solution**; open it once you have tried."
        )
    return quote("The Colab edition", " ".join(lines))


def notebook(docname: str, text: str, book: Book, where: str, install_tag: str, kernelspec: dict) -> str:
    """The Colab edition of one chapter, as the text of an .ipynb file."""
    chapter = Chapter(docname, text, book, where)
    cells = chapter.translate(install_tag)
    if chapter.glue_import and not any(c.metadata.get("glue") for c in cells):
        # no install cell (sync_notebooks always writes one): glue comes before the first code
        first = next((i for i, c in enumerate(cells) if c.kind == "code"), len(cells))
        cells.insert(first, _Cell("code", "", {"glue": True}))
    out: list[_Cell] = []
    intro_done = False
    for cell in cells:
        if cell.metadata.get("glue"):
            if chapter.glue_import:
                quoted = {k: v for k, v in chapter.quoted.items()}
                out.append(_Cell("code", glue_shim(quoted)))
            continue
        if not intro_done and cell.kind == "markdown" and re.match(r"^# ", cell.source):
            head, _, rest = cell.source.partition("\n")
            cell = _Cell(
                "markdown",
                head + "\n\n" + _intro(chapter, book) + ("\n\n" + rest.strip() if rest.strip() else ""),
            )
            intro_done = True
        out.append(cell)
    if chapter.quoted and not chapter.glue_import:
        raise _fail(
            where, 1, "the prose quotes glued values but no code cell has `from myst_nb import glue`."
        )
    slug = re.sub(r"[^A-Za-z0-9]+", "-", docname).strip("-")[:50] or "chapter"
    nb_cells = []
    for i, cell in enumerate(out):
        entry: dict = {
            "cell_type": cell.kind,
            "id": f"{slug}-{i:03d}",
            "metadata": cell.metadata,
            "source": _lines(cell.source),
        }
        if cell.kind == "code":
            entry["execution_count"] = None
            entry["outputs"] = []
        nb_cells.append(entry)
    nb = {
        "cells": nb_cells,
        "metadata": {
            "colab": {"toc_visible": True},
            "kernelspec": kernelspec,
            "language_info": {"name": "python"},
            "toy_book": {
                "generated_from": where,
                "generator": "scripts/sync_notebooks.py (do not edit this notebook: edit the chapter)",
            },
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _lines(text: str) -> list[str]:
    """A cell's source as nbformat stores it: lines with their newline, the last without."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# --------------------------------------------------------------------------- exercise stubs


@dataclass
class Stub:
    """A code cell a learner fills in: tagged skip-execution, inside an exercise."""

    line: int
    code: str
    exercise: str  # the exercise's label


def exercise_stubs(text: str) -> list[Stub]:
    stubs = []
    exercise: Block | None = None
    for b in blocks(text):
        if b.kind == "directive" and b.name == "exercise-start":
            exercise = b
        elif b.kind == "directive" and b.name == "exercise-end":
            exercise = None
        elif b.kind == "cell" and exercise is not None and "skip-execution" in b.tags:
            stubs.append(Stub(b.line, b.body, exercise.options.get("label", "")))
    return stubs


def last_checker_call(code: str) -> str | None:
    """The name of the `exercises.check_*` function that ``code``'s last statement calls, or None."""
    lines = [("# " + ln) if ln.lstrip().startswith(("%", "!")) else ln for ln in code.split("\n")]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    if (
        not tree.body
        or not isinstance(tree.body[-1], ast.Expr)
        or not isinstance(tree.body[-1].value, ast.Call)
    ):
        return None
    func = tree.body[-1].value.func
    if not isinstance(func, ast.Attribute) or not func.attr.startswith("check_"):
        return None
    owner = func.value
    dotted = []
    while isinstance(owner, ast.Attribute):
        dotted.append(owner.attr)
        owner = owner.value
    if isinstance(owner, ast.Name):
        dotted.append(owner.id)
    path = ".".join(reversed(dotted))
    return func.attr if path in ("exercises", "toy_lib.exercises") else None
