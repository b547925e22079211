"""The exercises appendix (book/exercises.md) lists every chapter's exercises, with the right
core/stretch mark, and every exercise is well formed.

The appendix has one ``##`` section per chapter, which links the chapter with {doc}, and in it
a ``### Core`` and a ``### Stretch`` list of {ref} links to exercise labels.
"""

from __future__ import annotations

import re

from book_sources import BOOK, all_pages, chapters, exercises, rel

APPENDIX = BOOK / "exercises.md"
MARKS = ("core", "stretch")


def appendix_listing() -> dict[str, tuple[str, str, int]]:
    """label -> (chapter docname, mark, line) as the appendix lists it."""
    listing: dict[str, tuple[str, str, int]] = {}
    chapter, mark = None, None
    for n, line in enumerate(APPENDIX.read_text(encoding="utf8").splitlines(), start=1):
        if line.startswith("## "):
            chapter, mark = None, None
        elif line.startswith("### "):
            heading = line[4:].strip().lower()
            assert heading in MARKS, f"{rel(APPENDIX)}:{n}: subsection {line!r}: expected Core or Stretch"
            mark = heading
        if chapter is None and (m := re.search(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", line)):
            chapter = m.group(1).lstrip("/")
        for label in re.findall(r"\{ref\}`(?:[^`<]*<)?([^`>]+)>?`", line):
            assert chapter and mark, (
                f"{rel(APPENDIX)}:{n}: {label} is listed outside a chapter section's Core or Stretch list"
            )
            assert label not in listing, f"{rel(APPENDIX)}:{n}: {label} is listed twice"
            listing[label] = (chapter, mark, n)
    return listing


def chapter_exercises() -> dict[str, tuple[str, str, str]]:
    """label -> (chapter docname, mark, "file:line") for every exercise in the chapters."""
    found: dict[str, tuple[str, str, str]] = {}
    problems = []
    for path in chapters():
        for ex in exercises(path):
            where = f"{rel(path)}:{ex.line}"
            if not ex.label:
                problems.append(
                    f"{where}: exercise {ex.title!r} has no :label: (the appendix links it by label)"
                )
                continue
            marks = [c for c in ex.classes if c in MARKS]
            if len(marks) != 1:
                problems.append(
                    f"{where}: exercise {ex.label} needs exactly one of `:class: core` or "
                    f"`:class: stretch`, found {ex.classes or 'no class'}"
                )
                continue
            if ex.label in found:
                problems.append(f"{where}: label {ex.label} is also used at {found[ex.label][2]}")
            found[ex.label] = (path.stem, marks[0], where)
    assert not problems, "\n".join(problems)
    return found


def test_every_exercise_has_a_label_and_a_mark():
    chapter_exercises()


def test_appendix_lists_every_exercise_with_its_mark():
    listed = appendix_listing()
    problems = []
    for label, (chapter, mark, where) in chapter_exercises().items():
        if label not in listed:
            problems.append(
                f"{where}: exercise {label} ({mark}) is missing from {rel(APPENDIX)}: add "
                f"`- {{ref}}`{label}`: ...` under ### {mark.title()} in the {chapter} section"
            )
            continue
        l_chapter, l_mark, line = listed[label]
        if l_chapter != chapter:
            problems.append(
                f"{rel(APPENDIX)}:{line}: {label} is listed under {l_chapter}, but it is in {chapter}"
            )
        if l_mark != mark:
            problems.append(
                f"{rel(APPENDIX)}:{line}: {label} is listed as {l_mark}, but {where} marks it {mark}"
            )
    assert not problems, "\n".join(problems)


def test_appendix_lists_no_missing_exercise():
    known = chapter_exercises()
    stale = [
        f"{rel(APPENDIX)}:{line}: {label} is not an exercise in any chapter"
        for label, (_, _, line) in appendix_listing().items()
        if label not in known
    ]
    assert not stale, "\n".join(stale)


def test_appendix_is_in_the_toc():
    assert APPENDIX in all_pages(), f"{rel(APPENDIX)} is not listed in _toc.yml"


def test_exercise_stubs_are_not_executed():
    """A code cell with a learner's TODO that raises must carry the skip-execution tag."""
    problems = []
    for path in chapters():
        text = path.read_text(encoding="utf8")
        for m in re.finditer(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.DOTALL):
            body = m.group(1)
            if "raise NotImplementedError" in body and "skip-execution" not in body.split("\n\n")[0]:
                line = text.count("\n", 0, m.start()) + 1
                problems.append(
                    f"{rel(path)}:{line}: this exercise stub raises NotImplementedError but "
                    "is not tagged `:tags: [skip-execution]`, so the book build would fail"
                )
    assert not problems, "\n".join(problems)


def test_exercise_titles_have_no_backticks():
    """In a ``` fence the directive line may not contain a backtick: CommonMark then reads the
    line as plain text, and sphinx-exercise fails on the unmatched exercise-end."""
    problems = [
        f"{rel(path)}:{ex.line}: exercise title {ex.title!r} contains a backtick; drop the code "
        "formatting from the title"
        for path in chapters()
        for ex in exercises(path)
        if "`" in ex.title
    ]
    assert not problems, "\n".join(problems)
