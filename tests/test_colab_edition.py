"""The Colab edition's translation (scripts/colab_edition.py), construct by construct, on small
MyST chapters: what each becomes in the notebook, and the errors it raises on what it cannot
translate. The real chapters are checked in test_colab.py."""

from __future__ import annotations

import io
import json
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

import colab_edition as ce  # noqa: E402
import sync_notebooks as sn  # noqa: E402

BASE = "https://example.github.io/book/"
FRONT = "---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n  name: python3\n---\n"
INSTALL = "```{code-cell} ipython3\n:tags: [skip-execution, colab-install]\n\n%pip install toy_lib\n```\n"
BIB = """
@article{solo2020, author = {Solo, Han}, title = {One}, year = {2020}, url = {https://one.example}}
@article{duo2021, author = {Ba, Jimmy and Kingma, Diederik P.}, title = {Two}, year = 2021}
@inproceedings{many2022, author = {Ann Smith and Bob Jones and Cy Lee}, title = {Three},
  year = {2022}, doi = {10.1/xyz}}
@article{accent2019, author = {Sch{\\"o}lkopf, Bernhard}, title = {{Causal}}, year = {2019}}
"""
OTHER = """(other)=
# The other chapter

(other-section)=
## A section over there

```{code-cell} ipython3
---
mystnb:
  figure:
    caption: Far away.
    name: fig-other
---
plot()
```
"""


def make_book(chapter: str, docname: str = "chap") -> ce.Book:
    pages = {docname: ce.scan_page(docname, chapter), "other": ce.scan_page("other", OTHER)}
    return ce.Book(
        base_url=BASE,
        raw_url="https://raw.example/org/repo/main/",
        path_to_book="book",
        title="The Book",
        pages=pages,
        bib=ce.read_bib(BIB),
        box_titles={"what-you-should-see": "What you should see", "core": "Core", "stretch": "Stretch"},
        substitutions={"version": "1.2"},
    )


def convert(body: str, docname: str = "chap") -> list[dict]:
    """The cells of the Colab edition of a chapter whose text is ``body``."""
    text = FRONT + "(chap)=\n# Title\n\n" + INSTALL + "\n" + body
    nb = ce.notebook(
        docname, text, make_book(text, docname), f"book/{docname}.md", "colab-install", {"name": "python3"}
    )
    return json.loads(nb)["cells"]


def markdown(body: str) -> str:
    """All Markdown of the converted chapter except the title cell (which holds the intro)."""
    cells = convert(body)
    return "\n\n".join("".join(c["source"]) for c in cells[1:] if c["cell_type"] == "markdown")


def error(body: str) -> str:
    with pytest.raises(ce.ColabError) as info:
        convert(body)
    return str(info.value)


# --------------------------------------------------------------------------- text


def test_terms_become_plain_text():
    out = markdown("A {term}`feature` and two {term}`neurons <neuron>`.\n")
    assert out == "A feature and two neurons."


def test_refs_give_titles_here_and_links_elsewhere():
    out = markdown(
        "(here)=\n## Here we are\n\nSee {ref}`here`, {ref}`this <here>` and {ref}`other-section`.\n"
    )
    assert "See *Here we are*, this and " in out
    assert f"[A section over there]({BASE}other.html#other-section)" in out
    assert "(here)=" not in out


def test_numref_counts_the_named_figures_of_the_page():
    body = (
        "```{code-cell} ipython3\n---\nmystnb:\n  figure:\n    caption: First.\n    name: fig-a\n---\nf()\n```\n\n"
        "```{code-cell} ipython3\n---\nmystnb:\n  figure:\n    caption: Unnamed, so not numbered.\n---\ng()\n```\n\n"
        "```{code-cell} ipython3\nfrom myst_nb import glue\n```\n\n```{glue:figure} b_fig\n:name: fig-b\n\nSecond, *glued*.\n```\n\n"
        "As {numref}`fig-b` and {numref}`Fig. %s <fig-a>` and {numref}`fig-other` show.\n"
    )
    out = markdown(body)
    assert "*Figure 1: First.*" in out and "*Unnamed, so not numbered.*" in out
    assert "*Figure 2: Second, *glued*.* (shown by the chapter's code" in out
    assert "As Figure 2 and Fig. 1 and " in out
    assert f"[Figure 1 of *The other chapter*]({BASE}other.html#fig-other)" in out


def test_a_figure_caption_is_an_italic_line_right_after_its_cell():
    cells = convert(
        "```{code-cell} ipython3\n---\nmystnb:\n  figure:\n    caption: A {term}`pentagon`\n      of arrows.\n    name: fig-p\n---\nplot()\n```\n"
    )
    i = next(i for i, c in enumerate(cells) if "".join(c["source"]) == "plot()")
    assert "".join(cells[i + 1]["source"]) == "*Figure 1: A pentagon of arrows.*"


def test_doc_gives_the_page_title():
    assert markdown("Read {doc}`other` and {doc}`that one <other>`.\n") == (
        f"Read [The other chapter]({BASE}other.html) and [that one]({BASE}other.html)."
    )


def test_citations_from_the_bib():
    out = markdown(
        "{cite:t}`solo2020` and {cite:t}`many2022` say so {cite:p}`duo2021, many2022`; {cite:p}`accent2019`.\n"
    )
    assert out == (
        "[Solo (2020)](https://one.example) and [Smith et al. (2022)](https://doi.org/10.1/xyz) say so "
        "(Ba and Kingma, 2021; [Smith et al., 2022](https://doi.org/10.1/xyz)); (Schölkopf, 2019)."
    )


def test_an_unknown_citation_key_is_an_error_with_its_line():
    message = error("Text.\n\nAs {cite:p}`nobody1999` said.\n")
    assert (
        re.match(r"book/chap\.md:\d+: ", message) and "nobody1999" in message and "references.bib" in message
    )


def test_math_stays_and_the_math_role_becomes_dollars():
    out = markdown("Inline $x^2$, role {math}`y_i`, and\n\n$$\na = b\n$$ (eq-ab)\n\nsee {eq}`eq-ab`.\n")
    assert "Inline $x^2$, role $y_i$, and" in out
    assert "$$\na = b\n\\tag{1} $$" in out and "see (1)." in out


def test_labels_and_comments_disappear():
    out = markdown("(a-label)=\n## Heading\n\n% a MyST comment\nText <!-- an HTML\ncomment --> here.\n")
    assert out == "## Heading\n\nText\n here."


def test_inline_code_and_plain_fences_are_left_alone():
    body = "Write `` {term}`x` `` to link.\n\n```python\nprint('{glue}')\n```\n"
    assert markdown(body) == body.strip()


def test_links_to_pages_point_at_the_hosted_book_and_substitutions_are_filled():
    out = markdown("See [there](other.md#other-section), [label](#other-section), v{{ version }}.\n")
    assert (
        out == f"See [there]({BASE}other.html#other-section), [label]({BASE}other.html#other-section), v1.2."
    )


def test_sub_sup_and_unknown_roles():
    assert markdown("H{sub}`2`O\n") == "H<sub>2</sub>O"
    message = error("A {wat}`thing`.\n")
    assert "{wat}" in message and "scripts/colab_edition.py" in message


# --------------------------------------------------------------------------- glue


def test_glued_numbers_are_named_in_the_prose_and_printed_by_the_cell():
    body = (
        "```{code-cell} ipython3\nfrom myst_nb import glue\n\nglue('loss', 0.012345, display=False)\n```\n\n"
        "The loss is {glue:text}`loss:.2e` ({glue:text}`loss:.3f`); later {glue:text}`gain:.1f`.\n\n"
        '```{code-cell} ipython3\nglue("gain", 2.25)\nglue("unquoted", 7, display=False)\n```\n'
    )
    cells = convert(body)
    sources = ["".join(c["source"]) for c in cells]
    assert (
        "The loss is `loss` (printed above) (`loss` (printed above)); later `gain` (printed below)."
        in sources
    )
    assert not any("myst_nb" in s for s in sources)
    code = [s for c, s in zip(cells, sources) if c["cell_type"] == "code"]
    assert code[0].startswith("%pip") and code[1].startswith("# The book quotes numbers")
    assert code[2] == "glue('loss', 0.012345, display=False)"
    namespace: dict = {}
    exec(code[1], namespace)
    assert namespace["_QUOTED"] == {"gain": [".1f"], "loss": [".2e", ".3f"]}
    printed = io.StringIO()
    with redirect_stdout(printed):
        namespace["glue"]("loss", 0.012345, display=False)
        namespace["glue"]("gain", 2.25)
        namespace["glue"]("unquoted", 7, display=False)
    assert printed.getvalue() == "loss = 1.23e-02, 0.012\ngain = 2.2\n"
    intro = sources[0]
    assert "like `loss`: the code cell that computes each prints it" in intro


def test_a_chapter_without_glue_gets_no_glue_cell():
    cells = convert("Just text.\n\n```{code-cell} ipython3\nx = 1\n```\n")
    assert [("".join(c["source"]))[:4] for c in cells if c["cell_type"] == "code"] == ["%pip", "x = "]


def test_other_uses_of_myst_nb_are_errors():
    message = error("```{code-cell} ipython3\nimport myst_nb\n```\n")
    assert "myst_nb" in message and "from myst_nb import glue" in message


def test_a_glued_value_only_a_solution_computes():
    body = (
        "```{code-cell} ipython3\nfrom myst_nb import glue\n```\n\n"
        "```{exercise} Q\n:label: ex-q\n\nWhat is {glue:text}`ans:.1f`?\n```\n\n"
        "```{solution-start} ex-q\n```\n\n```{code-cell} ipython3\nglue('ans', 4.0)\n```\n\n```{solution-end}\n```\n"
    )
    assert "What is `ans` (printed by the solution's code)?" in markdown(body)


# --------------------------------------------------------------------------- blocks


def test_boxes_and_admonitions_become_block_quotes():
    out = markdown(
        "```{what-you-should-see}\n:name: box-x\nFive arrows\nin a ring.\n```\n\n"
        "```{stretch} The matrix\nMore.\n```\n\n"
        ":::{admonition} Careful!\n- one\n- two\n:::\n\n"
        "```{note}\nA note.\n```\n"
    )
    assert "> **What you should see.** Five arrows\n> in a ring." in out
    assert "> **Stretch: The matrix.** More." in out
    assert "> **Careful!**\n>\n> - one\n> - two" in out
    assert "> **Note.** A note." in out
    assert ":name:" not in out


def test_dropdowns_fold():
    out = markdown("```{note}\n:class: dropdown\nHidden.\n```\n\n```{dropdown} Why?\nBecause.\n```\n")
    assert "<details>\n<summary>Note</summary>\n\nHidden.\n\n</details>" in out
    assert "<details>\n<summary>Why?</summary>\n\nBecause.\n\n</details>" in out


def test_a_live_widget_becomes_a_note_and_its_fallback_goes():
    body = (
        '(live)=\n## Live\n\n```{raw} html\n<div class="w"></div>\n```\n\n'
        ":::{container} widget-fallback\n*No JavaScript.*\n:::\n\n"
        ":::{container} plain\nKept.\n:::\n"
    )
    out = markdown(body)
    assert "<div" not in out and "No JavaScript" not in out and "Kept." in out
    assert "> **Live in the book.** " in out and f"]({BASE}chap.html#live)" in out


def test_code_blocks_figures_and_unknown_directives():
    out = markdown(
        "```{code-block} bash\nls\n```\n\n```{figure} img/a.png\n:name: fig-img\n\nAn image.\n```\n"
    )
    assert "```bash\nls\n```" in out
    assert "![](https://raw.example/org/repo/main/book/img/a.png)\n\n*Figure 1: An image.*" in out
    message = error("```{tab-set-of-doom}\nx\n```\n")
    assert "{tab-set-of-doom}" in message and re.match(r"book/chap\.md:\d+:", message)


# --------------------------------------------------------------------------- exercises


GATED = """## Exercises

```{exercise-start} Code it
:label: ex-code
:class: core
```

Write `f`.

```{code-cell} ipython3
:tags: [skip-execution]

def f():
    raise NotImplementedError


exercises.check_f(f)
```

```{exercise-end}
```

```{solution-start} ex-code
:class: dropdown
```

The idea.

```{code-cell} ipython3
def f():
    return 1


exercises.check_f(f)
```

```{solution-end}
```

```{exercise} Think
:label: ex-think
:class: stretch

Why {term}`superposition`?
```

```{solution} ex-think
:class: dropdown

Because, see {numref}`ex-code`.
```
"""


def test_exercises_get_numbered_headings_and_stubs_stay_code():
    cells = convert(GATED)
    kinds = [(c["cell_type"], "".join(c["source"])) for c in cells]
    i = next(i for i, (_, s) in enumerate(kinds) if s.startswith("### Exercise 1"))
    assert kinds[i] == ("markdown", "### Exercise 1: Code it (core)\n\nWrite `f`.")
    assert kinds[i + 1][0] == "code" and kinds[i + 1][1].startswith("def f():\n    raise NotImplementedError")
    assert cells[i + 1]["metadata"] == {}, "the stub keeps no skip-execution tag in Colab"
    solution = kinds[i + 2]
    assert solution[0] == "markdown"
    assert solution[1] == (
        "<details>\n<summary>Solution</summary>\n\nThe idea.\n\n"
        "```python\ndef f():\n    return 1\n\n\nexercises.check_f(f)\n```\n\n</details>"
    )
    assert kinds[i + 3] == ("markdown", "### Exercise 2: Think (stretch)\n\nWhy superposition?")
    assert kinds[i + 4] == (
        "markdown",
        "<details>\n<summary>Solution</summary>\n\nBecause, see Exercise 1.\n\n</details>",
    )
    assert sum(1 for k, s in kinds if k == "code" and "return 1" in s) == 0, "a solution is a code cell"


def test_unbalanced_gated_exercises_are_errors():
    assert "has no {exercise-end}" in error("```{exercise-start}\n:label: ex-a\n```\n\nText.\n")
    assert "without a {solution-start}" in error("```{solution-end}\n```\n")


def test_stubs_and_their_last_checker_call():
    stubs = ce.exercise_stubs(FRONT + GATED)
    assert [(s.exercise, ce.last_checker_call(s.code)) for s in stubs] == [("ex-code", "check_f")]
    assert ce.last_checker_call("f()\nexercises.check_forward(forward)") == "check_forward"
    assert ce.last_checker_call("toy_lib.exercises.check_loss(loss)") == "check_loss"
    assert ce.last_checker_call("%time x = 1\nexercises.check_loss(loss)") == "check_loss"
    assert ce.last_checker_call("fig, m = analyze(5, 2)") is None
    assert ce.last_checker_call("exercises.check_loss(loss)\nprint('done')") is None
    assert ce.last_checker_call("other.check_loss(loss)") is None


# --------------------------------------------------------------------------- the notebook


def test_cells_break_at_headings_and_ids_are_deterministic():
    body = "Intro.\n\n## One\n\nText one.\n\n### Two\n\nText two.\n"
    cells = convert(body, docname="ch_1")
    sources = ["".join(c["source"]) for c in cells]
    assert sources[0].startswith("# Title\n\n> **The Colab edition.**")
    assert sources[2:] == ["Intro.", "## One\n\nText one.", "### Two\n\nText two."]
    assert [c["id"] for c in cells] == [f"ch-1-{i:03d}" for i in range(len(cells))]
    assert convert(body, docname="ch_1") == cells


def test_the_install_cell_keeps_its_tags_and_comes_first():
    cells = convert("Text.\n\n```{code-cell} ipython3\n:tags: [hide-input]\n\nx = 1\n```\n")
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code[0]["metadata"] == {"tags": ["skip-execution", "colab-install"]}
    assert code[1]["metadata"] == {} and "".join(code[1]["source"]) == "x = 1"


# --------------------------------------------------------------------------- the book around it


def test_the_bib_reader():
    bib = ce.read_bib(BIB)
    assert set(bib) == {"solo2020", "duo2021", "many2022", "accent2019"}
    assert ce.cite_label(bib["duo2021"]) == ("Ba and Kingma", "2021")
    assert ce.cite_label(bib["accent2019"]) == ("Schölkopf", "2019")
    assert ce.cite_url(bib["many2022"]) == "https://doi.org/10.1/xyz" and ce.cite_url(bib["duo2021"]) is None


def test_the_real_books_references_all_resolve():
    bib = ce.read_bib((REPO / "book" / "references.bib").read_text(encoding="utf-8"))
    assert bib, "book/references.bib has no entries"
    for key, entry in bib.items():
        names, year = ce.cite_label(entry)
        assert names and re.fullmatch(r"\d{4}", year), (key, names, year)


def test_the_hosted_address_comes_from_the_config_or_the_repository(tmp_path):
    assert sn.base_url(REPO).startswith("https://") and sn.base_url(REPO).endswith("/")
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/org/repo\n  branch: main\n", encoding="utf-8"
    )
    assert sn.base_url(tmp_path) == "https://org.github.io/repo/"
    assert sn.raw_url(tmp_path) == "https://raw.githubusercontent.com/org/repo/main/"


def test_the_box_titles_are_the_extensions_own():
    assert sn.box_titles(REPO) == {
        "what-you-should-see": "What you should see",
        "core": "Core",
        "stretch": "Stretch",
    }


def test_pairing_is_removed_and_the_rest_of_the_front_matter_kept():
    text = (
        "---\njupytext:\n  formats: md:myst,ipynb\n  text_representation:\n    format_name: myst\n---\n# T\n"
    )
    assert sn.pairing(text) == "formats: md:myst,ipynb"
    out = sn.without_pairing(text)
    assert out == "---\njupytext:\n  text_representation:\n    format_name: myst\n---\n# T\n"
    assert sn.pairing(out) is None and sn.without_pairing(out) == out


def test_the_blocks_keep_line_numbers():
    text = FRONT + "# T\n\nText.\n\n```{note}\n:class: x\n\nBody.\n```\n"
    bs = ce.blocks(text)
    lines = text.split("\n")
    note = next(b for b in bs if b.kind == "directive")
    assert lines[note.line - 1] == "```{note}" and lines[note.body_line - 1] == "Body."
    assert note.options == {"class": "x"}
    assert Path(__file__).name  # (keeps the import used when run alone)
