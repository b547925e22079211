"""The chapter check (scripts/check_chapters.py): the book's chapters pass it, and on a chapter
made from the template it names every missing piece, one message each, with where to add it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

import check_chapters as cc  # noqa: E402
import sync_notebooks as sn  # noqa: E402

TEMPLATE = REPO / "book" / "_templates" / "chapter_template.md"


# --------------------------------------------------------------------------- the book itself


def test_every_chapter_passes_the_check():
    problems = cc.check(REPO)
    assert not problems, "the chapter check failed:\n\n" + "\n\n".join(problems)


def test_the_check_runs_as_a_script():
    proc = subprocess.run(
        [sys.executable, "scripts/check_chapters.py"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "toy_models" in proc.stdout


def test_chapters_are_the_toc_pages_outside_the_appendices():
    pages = sn.toc_pages(REPO)
    assert pages[0].kind == "root" and pages[0].docname == "index"
    chapters = [p.docname for p in pages if p.kind == "chapter"]
    assert "toy_models" in chapters
    for page in pages:
        if page.kind == "appendix":
            assert page.part.lower().startswith("appendi"), page
    assert not set(chapters) & {"glossary", "references", "index"}


# --------------------------------------------------------------------------- a scratch book


def filled_template() -> str:
    """The template with every `<!-- TEMPLATE: ... -->` comment removed (a filled-in chapter)."""
    text = TEMPLATE.read_text(encoding="utf-8")
    text = re.sub(r"<!-- TEMPLATE:.*?-->\n?", "", text, flags=re.DOTALL)
    text = re.sub(r"<!-- A new chapter.*?-->\n?", "", text, flags=re.DOTALL)
    return text.replace("(my-topic)=", "(new-chapter)=")


@pytest.fixture()
def scratch(tmp_path) -> Path:
    """A minimal repository: the real _config.yml, references.bib and box definitions, a toc with
    one chapter `new_chapter`, so the checker and the sync script run on it exactly as on the
    book (toy_lib's checkers are looked up in the real toy_lib)."""
    shutil.copy2(REPO / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book" / "_ext").mkdir(parents=True)
    shutil.copy2(REPO / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copy2(REPO / "book" / "_ext" / "book_boxes.py", tmp_path / "book" / "_ext" / "book_boxes.py")
    (tmp_path / "book" / "index.md").write_text("# Index\n", encoding="utf-8")
    toc = {
        "format": "jb-book",
        "root": "index",
        "parts": [
            {"caption": "Chapters", "chapters": [{"file": "new_chapter"}]},
            {"caption": "Appendices", "chapters": [{"file": "glossary"}]},
        ],
    }
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    (tmp_path / "book" / "glossary.md").write_text("# Glossary\n", encoding="utf-8")
    return tmp_path


def write_chapter(repo: Path, text: str, sync: bool = True) -> Path:
    md = repo / "book" / "new_chapter.md"
    md.write_text(text, encoding="utf-8")
    if sync:
        assert not sn.sync(repo), "sync_notebooks failed on the scratch chapter"
    return md


def test_the_filled_template_passes_every_check(scratch):
    write_chapter(scratch, filled_template())
    problems = cc.check(scratch)
    assert not problems, "\n\n".join(problems)
    assert (scratch / "book" / "new_chapter.ipynb").exists()


def test_an_unfilled_template_reports_each_placeholder(scratch):
    md = write_chapter(scratch, TEMPLATE.read_text(encoding="utf-8"))
    problems = cc.check(scratch)
    placeholders = [p for p in problems if "placeholder from the chapter template" in p]
    expected = sum("TEMPLATE:" in line for line in md.read_text(encoding="utf-8").split("\n"))
    assert expected >= 10 and len(placeholders) == expected, "\n\n".join(problems)
    assert all(re.match(r"book/new_chapter\.md:\d+: ", p) for p in placeholders)
    assert len(problems) == len(placeholders), "\n\n".join(problems)


# Each piece of a chapter, how to remove it from the filled template, and words its message must
# contain (the snippet to add is part of each message).
PIECES = {
    "kernel": (
        lambda t: re.sub(r"kernelspec:\n(  .*\n)+", "", t),
        ["a kernel", "kernelspec:", "name: python3"],
    ),
    # (removed after the sync: a hand edit to a chapter that was in step)
    "jupytext": (lambda t: t.replace("    format_name: myst\n", ""), ["format_name: myst"]),
    "label": (lambda t: t.replace("(new-chapter)=\n", ""), ["a label", "(new-chapter)=", "line"]),
    "objectives": (
        lambda t: t.replace("By the end of the chapter you should be able to:", "Goals."),
        ["learning objectives", "By the end of the chapter you should be able to:"],
    ),
    # (the figure's {numref} goes with it: a dangling reference is an error of its own)
    "figure": (
        lambda t: re.sub(r"---\nmystnb:\n(  .*\n)+---\n", "", t).replace(
            " ({numref}`fig-my-topic-arrows`)", ""
        ),
        ["an executed figure", "mystnb:", "figure:", "caption:"],
    ),
    "box": (
        lambda t: t.replace("{what-you-should-see}", "{note}"),
        ['"What you should see" box', "```{what-you-should-see}"],
    ),
    "exercises": (
        lambda t: (
            t.replace("{exercise-start}", "{note}")
            .replace("{exercise-end}", "{note}")
            .replace("{exercise}", "{note}")
        ),
        ["exercises", "```{exercise-start}", ":label:"],
    ),
    "summary": (lambda t: t.replace("## Summary", "## In short"), ["`## Summary` section", "## Summary"]),
}


@pytest.mark.parametrize("piece", sorted(PIECES))
def test_each_missing_piece_gets_its_own_message(scratch, piece):
    remove, words = PIECES[piece]
    full = filled_template()
    text = remove(full)
    assert text != full, f"the test could not remove the {piece} from the template"
    if piece == "jupytext":
        md = write_chapter(scratch, full)
        md.write_text(remove(md.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        write_chapter(scratch, text)
    problems = cc.check(scratch)
    assert len(problems) == 1, f"expected one message for the missing {piece}, got:\n\n" + "\n\n".join(
        problems
    )
    message = problems[0]
    assert message.startswith("book/new_chapter.md"), message
    for word in words:
        assert word in message, f"the message for the missing {piece} lacks {word!r}:\n{message}"


def test_a_bare_chapter_gets_every_message_at_once(scratch):
    write_chapter(scratch, "# Something\n\nSome prose.\n", sync=False)
    problems = "\n\n".join(cc.check(scratch))
    for words in [
        "jupytext front matter",
        "a label",
        "learning objectives",
        "an executed figure",
        '"What you should see" box',
        "exercises",
        "`## Summary` section",
        "Colab install cell",
        "book/new_chapter.ipynb: missing",
    ]:
        assert words in problems, f"no message about {words!r}:\n\n{problems}"


def test_a_stale_notebook_is_reported(scratch):
    md = write_chapter(scratch, filled_template())
    md.write_text(md.read_text(encoding="utf-8").replace("five features", "six features"), encoding="utf-8")
    problems = cc.check(scratch)
    assert len(problems) == 1 and "out of step" in problems[0], "\n\n".join(problems)
    assert "scripts/sync_notebooks.py" in problems[0]
    assert not sn.sync(scratch) and not cc.check(scratch), "sync_notebooks did not bring it back in step"


def test_an_install_cell_out_of_date_with_the_config_is_reported(scratch):
    write_chapter(scratch, filled_template())
    cfg = (scratch / "_config.yml").read_text(encoding="utf-8")
    (scratch / "_config.yml").write_text(
        re.sub(r"(?m)^  branch: .*$", "  branch: release", cfg), encoding="utf-8"
    )
    problems = "\n\n".join(cc.check(scratch))
    assert "install cell is out of date" in problems, problems
    assert not sn.sync(scratch) and not cc.check(scratch)
    assert "@release" in (scratch / "book" / "new_chapter.ipynb").read_text(encoding="utf-8")


def test_a_chapter_missing_from_the_toc_is_reported(scratch):
    write_chapter(scratch, filled_template())
    (scratch / "book" / "orphan.md").write_text("# Orphan\n", encoding="utf-8")
    (scratch / "book" / "_drafts").mkdir()
    (scratch / "book" / "_drafts" / "later.md").write_text("# Later\n", encoding="utf-8")
    problems = cc.check(scratch)
    assert len(problems) == 1, "\n\n".join(problems)
    assert problems[0].startswith("book/orphan.md: not in _toc.yml") and "- file: orphan" in problems[0]


def test_a_toc_entry_without_a_file_is_reported(scratch):
    problems = cc.check(scratch)  # the toc lists new_chapter, which does not exist yet
    assert any("listed in _toc.yml but the file does not exist" in p for p in problems), problems


def test_appendices_are_not_held_to_the_chapter_checks(scratch):
    write_chapter(scratch, filled_template())
    assert not cc.check(scratch)  # glossary.md is a bare page in the Appendices part


def test_a_jupytext_pairing_is_reported_and_removed(scratch):
    md = write_chapter(scratch, filled_template())
    text = md.read_text(encoding="utf-8")
    md.write_text(text.replace("jupytext:\n", "jupytext:\n  formats: md:myst,ipynb\n", 1), encoding="utf-8")
    problems = cc.check(scratch)
    assert len(problems) == 1 and "formats: md:myst,ipynb" in problems[0], "\n\n".join(problems)
    assert "delete that line" in problems[0]
    assert not sn.sync(scratch) and not cc.check(scratch)
    assert md.read_text(encoding="utf-8") == text


STUB = """def feature_dimensionality(W):
    \"\"\"(hidden, feature) weights -> (feature,) dimensionalities.\"\"\"
    # TODO
    raise NotImplementedError


exercises.check_feature_dimensionality(feature_dimensionality)"""


@pytest.mark.parametrize(
    "last, words",
    [
        (
            "D = feature_dimensionality(W)",
            ["must end with a call to a checker", "D = feature_dimensionality(W)"],
        ),
        ("exercises.check_nothing(feature_dimensionality)", ["`exercises.check_nothing`", "does not define"]),
    ],
)
def test_an_exercise_stub_must_end_with_a_checker(scratch, last, words):
    text = filled_template()
    assert STUB in text, "the template's stub changed: update this test"
    md = write_chapter(scratch, text.replace(STUB, STUB.rsplit("\n", 1)[0] + "\n" + last))
    problems = cc.check(scratch)
    assert len(problems) == 1, "\n\n".join(problems)
    lines = md.read_text(encoding="utf-8").split("\n")
    todo = next(i for i, ln in enumerate(lines) if "raise NotImplementedError" in ln)
    line = max(i for i in range(todo) if lines[i].startswith("```{code-cell}")) + 1
    assert problems[0].startswith(
        f"book/new_chapter.md:{line}: the exercise stub of ex-my-topic-dimensionality"
    )
    for word in words:
        assert word in problems[0], problems[0]


def test_a_chapter_the_colab_edition_cannot_translate_is_reported(scratch):
    md = write_chapter(scratch, filled_template())
    md.write_text(
        md.read_text(encoding="utf-8").replace("## Summary", "{wat}`x`\n\n## Summary"), encoding="utf-8"
    )
    problems = cc.check(scratch)
    assert len(problems) == 1 and "{wat}" in problems[0] and "cannot be generated" in problems[0], problems
    assert re.match(r"book/new_chapter\.md:\d+: ", problems[0])
    stale = sn.sync(scratch)
    assert len(stale) == 1 and "was not written" in stale[0], stale


@pytest.mark.slow
def test_the_template_code_runs(tmp_path):
    """A contributor's first build of a new chapter: the template's code cells run as the book runs
    them (the install cell and the exercise skeleton are skipped)."""
    nbclient = pytest.importorskip("nbclient")
    import jupytext

    nb = jupytext.reads(filled_template(), fmt="md:myst")
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    kinds = [
        out.get("output_type")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    ]
    assert "error" not in kinds
    assert "display_data" in kinds, "the figure cell drew nothing"
