"""The glossary and the chapters agree.

- every glossary term is linked from at least one chapter (no orphan definitions);
- every {term} link on any page names a term the glossary defines;
- in each chapter, a glossary term is linked where it first appears: no plain-text use of the
  term comes before the chapter's first {term} link to it.

Checked on the MyST sources, so the messages can name the file and line to fix.
"""

from __future__ import annotations

from book_sources import (
    BOOK,
    all_pages,
    chapters,
    first_mention,
    glossary_entries,
    line_of,
    norm_term,
    prose,
    rel,
    term_links,
)

#: Everyday uses of a word that is also a glossary term; they need no link.
EVERYDAY = {
    "instance": ("for instance",),
    "direction": ("in the direction of",),
}


def _entries():
    entries = glossary_entries()
    assert entries, "book/glossary.md defines no terms"
    return entries


def test_glossary_has_definitions_and_no_duplicates():
    seen: dict[str, int] = {}
    for entry in _entries():
        assert len(entry.definition.split()) >= 5, (
            f"book/glossary.md:{entry.line}: the definition of {entry.names[0]!r} is too short to "
            "help a reader"
        )
        for name in entry.names:
            key = norm_term(name)
            assert key not in seen, (
                f"book/glossary.md:{entry.line}: {name!r} is already defined at line {seen[key]}"
            )
            seen[key] = entry.line


def test_every_glossary_term_is_linked_from_a_chapter():
    linked = {link.target for path in chapters() for link in term_links(path.read_text(encoding="utf8"))}
    orphans = [
        f"book/glossary.md:{e.line}: {e.names[0]!r}"
        for e in _entries()
        if not any(norm_term(n) in linked for n in e.names)
    ]
    assert not orphans, (
        "glossary terms that no chapter links (link each where a chapter first uses it with "
        "{term}`...`, or remove the entry):\n  " + "\n  ".join(orphans)
    )


def test_every_term_link_is_in_the_glossary():
    defined = {norm_term(n) for e in _entries() for n in e.names}
    missing = []
    for path in all_pages():
        text = path.read_text(encoding="utf8")
        for link in term_links(text):
            if link.target not in defined:
                missing.append(f"{rel(path)}:{line_of(text, link.pos)}: {{term}}`{link.text}`")
    assert not missing, (
        "{term} links to terms that book/glossary.md does not define (add the term there, or fix "
        "the spelling):\n  " + "\n  ".join(missing)
    )


def first_appearance_problems(path) -> list[str]:
    """Glossary terms that a chapter uses in plain text before (or without) linking them."""
    text = path.read_text(encoding="utf8")
    masked = prose(text)
    first_link: dict[str, int] = {}
    for link in term_links(text):
        first_link.setdefault(link.target, link.pos)
    problems = []
    for entry in _entries():
        keys = [norm_term(n) for n in entry.names]
        links = [first_link[k] for k in keys if k in first_link]
        mentions = [
            (pos, name)
            for name in entry.names
            if (pos := first_mention(masked, name, EVERYDAY.get(norm_term(name), ()))) is not None
        ]
        if not mentions:
            continue
        pos, name = min(mentions)
        where = f"{rel(path)}:{line_of(text, pos)}"
        if not links:
            problems.append(
                f"{where}: {name!r} is a glossary term but this chapter never links it; "
                f"write {{term}}`{entry.names[0]}` where it first appears"
            )
        elif min(links) > pos:
            problems.append(
                f"{where}: {name!r} first appears here as plain text, before its first "
                f"{{term}} link (line {line_of(text, min(links))}); move the link here"
            )
    return problems


def test_chapters_link_terms_where_they_first_appear():
    problems = [p for path in chapters() for p in first_appearance_problems(path)]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the checker itself


def test_first_appearance_check_catches_a_late_link(tmp_path, monkeypatch):
    chapter = tmp_path / "demo.md"
    chapter.write_text(
        "# Superposition\n\n"
        "A model stores each feature along a direction; later we say more about the\n"
        "{term}`feature` and the {term}`direction`.\n\n"
        "```{code-cell} ipython3\nsuperposition = 1  # code is not prose\n```\n\n"
        "The {term}`neurons <neuron>` of a layer; math such as $\\mathrm{ReLU}(x)$ is not prose.\n",
        encoding="utf8",
    )
    problems = "\n".join(first_appearance_problems(chapter))
    assert "'feature' first appears here" in problems and "demo.md:3" in problems
    assert "'direction' first appears here" in problems
    assert "neuron" not in problems  # linked at its first use
    assert "ReLU" not in problems  # only inside math
    assert "superposition" not in problems  # only in a heading and in code


def test_first_appearance_check_accepts_an_early_link(tmp_path):
    chapter = tmp_path / "demo.md"
    chapter.write_text(
        "Each {term}`feature` has a {term}`direction`; every feature, every direction.\n",
        encoding="utf8",
    )
    assert first_appearance_problems(chapter) == []


def test_glossary_is_in_the_toc():
    assert BOOK / "glossary.md" in all_pages(), "book/glossary.md is not listed in _toc.yml"
