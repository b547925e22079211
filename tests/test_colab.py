"""Every chapter's "Open in Colab" button opens a clean notebook that runs to the end.

- The link the theme builds for each chapter points at `book/<chapter>.ipynb` on the repository
  and branch of `_config.yml`; that file is in the repository, exactly as
  scripts/sync_notebooks.py writes it now, and not a page of the book.
- It is plain Markdown and code: no MyST role, directive, label or option line is left (Colab
  would show them raw). The scan is checked too: it finds plenty in a plain jupytext conversion
  of each chapter, which is what the notebook used to be.
- Its first code cell installs toy_lib (and nothing else: no myst-nb) from that repository and
  branch, only in Colab (or when `TOY_LIB_INSTALL_TARGET` overrides the target), and the book
  build does not execute it.
- Solutions are folded Markdown, never code cells; exercise stubs are code cells; every number the
  prose quotes is printed by the notebook's own `glue`.
- In a fresh virtual environment with nothing but torch (as Colab has) and a Jupyter kernel,
  each chapter's notebook runs top to bottom, every cell including the exercise stubs, its
  install cell installing toy_lib from a copy of the working tree.

The translation itself is tested on small MyST snippets in test_colab_edition.py.
"""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, copy_repo, repo_files

sys.path.insert(0, str(REPO / "scripts"))

import check_chapters as cc  # noqa: E402
import colab_edition as ce  # noqa: E402
import sync_notebooks as sn  # noqa: E402

CHAPTERS = sn.chapter_pages(REPO)
COLAB_RE = re.compile(r'href="(https://colab\.research\.google\.com/github/[^"]+)"')
#: The torch the clean environment starts from: on these machines a local CPU wheel (an unpinned
#: torch would pull several GB of CUDA packages). Colab brings its own torch the same way.
TORCH = "torch==2.13.0"


def expected_colab_url(page: sn.Page) -> str:
    url, branch, path_to_book = sn.repository(REPO)
    colab = str((sn.load_config(REPO).get("launch_buttons") or {}).get("colab_url", "")).rstrip("/")
    slug = url.split("github.com/", 1)[1]
    return f"{colab}/github/{slug}/blob/{branch}/{path_to_book}/{page.docname}.ipynb"


def repo_path_of(colab_url: str) -> str:
    """The path inside the repository that a Colab link opens (`book/<chapter>.ipynb`)."""
    url, branch, _ = sn.repository(REPO)
    slug = url.split("github.com/", 1)[1]
    prefix = f"https://colab.research.google.com/github/{slug}/blob/{branch}/"
    assert colab_url.startswith(prefix), f"{colab_url} is not on {slug}@{branch} ({prefix}...)"
    return colab_url[len(prefix) :]


def read_notebook(page: sn.Page) -> dict:
    return json.loads((REPO / "book" / f"{page.docname}.ipynb").read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"])


def _shown_value(text: str, spec: str) -> float | int:
    """The number a printed value stands for, under the format spec the prose uses for it:
    thousands separators dropped ("7,900", an int), a percentage read back as a fraction ("97%")."""
    text = text.replace(",", "")
    if spec.endswith("%"):
        return float(text.removesuffix("%")) / 100
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


# --------------------------------------------------------------------------- raw MyST

#: What MyST looks like, as Colab would show it raw: (what, pattern, where it counts).
MYST = [
    ("a role", re.compile(r"\{[A-Za-z][\w:+.-]*\}`"), "both"),
    ("a directive fence", re.compile(r"(`{3,}|~{3,}|:{3,})[ \t]*\{"), "both"),
    ("a glue reference", re.compile(r"\{glue"), "both"),
    ("a label line", re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*$", re.MULTILINE), "markdown"),
    (
        "a directive option line",
        re.compile(
            r"^[ \t]*:(name|class|tags|label|caption|figwidth|doc|nonumber|alt|width|align):(\s|$)",
            re.MULTILINE,
        ),
        "markdown",
    ),
    ("a jupytext cell break", re.compile(r"^\+\+\+", re.MULTILINE), "markdown"),
    ("a MyST comment", re.compile(r"^%[ \t]", re.MULTILINE), "markdown"),
    ("a substitution", re.compile(r"\{\{[ \t]*[\w.-]+[ \t]*\}\}"), "markdown"),
    ("an import of myst_nb", re.compile(r"\bmyst_nb\b"), "code"),
]


def myst_leftovers(nb: dict, name: str) -> list[str]:
    """Every piece of MyST in a notebook's cells: "<notebook>: cell <n> (<type>, id <id>): <what>: <snippet>"."""
    found = []
    for n, cell in enumerate(nb["cells"], start=1):
        text = source(cell)
        kind = cell["cell_type"]
        for what, pattern, where in MYST:
            if where not in ("both", kind):
                continue
            for m in pattern.finditer(text):
                snippet = text[max(0, m.start() - 20) : m.end() + 40].replace("\n", "\\n")
                found.append(f"{name}: cell {n} ({kind}, id {cell.get('id')}): {what}: ...{snippet}...")
    return found


def test_there_are_chapters():
    assert CHAPTERS, "no chapter found in _toc.yml"


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_the_colab_notebook_has_no_myst(page):
    leftovers = myst_leftovers(read_notebook(page), f"book/{page.docname}.ipynb")
    assert not leftovers, f"{len(leftovers)} piece(s) of raw MyST Colab would show:\n" + "\n".join(leftovers)


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_the_scan_finds_the_myst_of_a_plain_conversion(page):
    """What the notebook was before the Colab edition: jupytext's conversion of the chapter. The
    scan must find its roles, fences, labels, options and glue, or it proves nothing."""
    import jupytext

    nb = json.loads(jupytext.writes(jupytext.read(REPO / "book" / f"{page.docname}.md"), fmt="ipynb"))
    leftovers = "\n".join(myst_leftovers(nb, f"{page.docname} (jupytext)"))
    for what in (
        "a role",
        "a directive fence",
        "a glue reference",
        "a label line",
        "a directive option line",
    ):
        assert f": {what}: " in leftovers, f"the scan missed {what} in the plain conversion:\n{leftovers}"


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_the_colab_target_is_in_the_repository_and_in_step(page):
    target = repo_path_of(expected_colab_url(page))
    assert target == f"book/{page.docname}.ipynb"
    assert target in repo_files(REPO), (
        f"{target} is not in the repository, so the chapter's Colab button leads nowhere. "
        "Run `python scripts/sync_notebooks.py` and commit the notebook."
    )
    problem = cc.notebook_in_step(REPO / "book" / f"{page.docname}.md", REPO)
    assert problem is None, problem


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_the_notebook_is_valid_and_deterministic(page):
    import nbformat

    text = (REPO / "book" / f"{page.docname}.ipynb").read_text(encoding="utf-8")
    nbformat.validate(nbformat.reads(text, as_version=4))
    again = sn.colab_notebook(page, REPO)
    assert again == sn.colab_notebook(page, REPO) == text, "regenerating the chapter changed the notebook"
    nb = json.loads(text)
    ids = [c["id"] for c in nb["cells"]]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", page.docname)
    assert ids == [f"{slug}-{i:03d}" for i in range(len(ids))], ids[:5]
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in nb["cells"]
        if c["cell_type"] == "code"
    )


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_the_first_code_cell_installs_toy_lib_from_the_configured_repository(page):
    url, branch, _ = sn.repository(REPO)
    md = REPO / "book" / f"{page.docname}.md"
    in_md = next(b for b in ce.blocks(md.read_text(encoding="utf-8")) if b.kind == "cell")
    in_nb = next(c for c in read_notebook(page)["cells"] if c["cell_type"] == "code")
    for name, tags, code in (
        (md.name, in_md.tags, in_md.body),
        (f"{page.docname}.ipynb", in_nb["metadata"].get("tags", []), source(in_nb)),
    ):
        assert "skip-execution" in tags and sn.INSTALL_TAG in tags, f"{name}: first code cell tags {tags}"
        assert f'"toy_lib @ git+{url}@{branch}"' in code, f"{name}:\n{code}"
        assert '"google.colab" in sys.modules' in code
        assert "os.environ.get(" in code and f'"{sn.TARGET_ENV}"' in code
        pip = [ln.strip() for ln in code.split("\n") if "%pip install" in ln]
        assert pip == ['%pip install --quiet "{_target}"'], f"{name}: installs more than toy_lib: {pip}"


def test_the_install_cell_does_nothing_outside_colab(tmp_path):
    """Run outside Colab with no override, the cell must not install anything."""
    cell = next(b for b in ce.blocks(sn.install_cell(REPO)) if b.kind == "cell")
    script = cell.body.replace("%pip install", "raise SystemExit(3)  #")
    env = {k: v for k, v in os.environ.items() if k != sn.TARGET_ENV}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", script], env={**env, sn.TARGET_ENV: "x"}, capture_output=True
    )
    assert proc.returncode == 3, "with the override set, the cell should reach %pip install"


def test_the_notebooks_are_not_pages_of_the_book():
    """Sphinx must not see book/<chapter>.ipynb beside book/<chapter>.md ("multiple files found"
    fails the strict build, and Sphinx may pick the notebook instead of the chapter)."""
    from sphinx.util.matching import get_matching_files

    patterns = sn.load_config(REPO)["sphinx"]["config"]["exclude_patterns"]
    seen = [f for f in get_matching_files(REPO / "book", exclude_patterns=patterns) if f.endswith(".ipynb")]
    assert not seen, f"exclude_patterns {patterns} in _config.yml let Sphinx read {seen}"


def test_the_notebooks_are_in_step():
    stale = sn.sync(REPO, check=True)
    assert not stale, "\n".join(stale)


def test_no_chapter_is_paired_by_jupytext():
    """A `formats:` pairing would let Jupyter overwrite the generated notebook with raw MyST."""
    paired = [
        p.docname for p in CHAPTERS if sn.pairing((REPO / "book" / f"{p.docname}.md").read_text("utf-8"))
    ]
    assert not paired, f"chapters still paired by jupytext: {paired}"


# --------------------------------------------------------------------------- exercises and glue


def chapter_parts(page: sn.Page) -> tuple[list[str], list[str], list[str]]:
    """(stub code, solution code, every code cell) of a chapter's source, as written there."""
    text = (REPO / "book" / f"{page.docname}.md").read_text(encoding="utf-8")
    solutions, cells = [], []
    in_solution = False
    for b in ce.blocks(text):
        if b.kind == "directive" and b.name in ("solution-start", "solution-end"):
            in_solution = b.name == "solution-start"
        elif b.kind == "cell":
            cells.append(b.body)
            if in_solution:
                solutions.append(b.body)
    return [stub.code for stub in ce.exercise_stubs(text)], solutions, cells


def norm(code: str) -> str:
    return "\n".join(ln.rstrip() for ln in code.strip().split("\n"))


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_solutions_are_folded_text_and_stubs_are_code(page):
    nb = read_notebook(page)
    code = [norm(source(c)) for c in nb["cells"] if c["cell_type"] == "code"]
    folded = [source(c) for c in nb["cells"] if c["cell_type"] == "markdown" and "<details>" in source(c)]
    stubs, solutions, _ = chapter_parts(page)
    assert solutions, f"{page.docname} has no solution with code: nothing to check"
    for sol in solutions:
        assert norm(sol) not in code, f"a solution is a code cell of the Colab notebook:\n{sol[:300]}"
        assert any(norm(sol) in norm(f) for f in folded), (
            f"a solution is not in a folded <details> cell:\n{sol[:300]}"
        )
    for stub in stubs:
        assert norm(stub) in code, f"an exercise stub is not a code cell of the Colab notebook:\n{stub[:300]}"
    tagged = [
        c["metadata"].get("tags")
        for c in nb["cells"]
        if c["cell_type"] == "code" and c["metadata"].get("tags")
    ]
    assert all(sn.INSTALL_TAG in t for t in tagged), f"only the install cell keeps tags: {tagged}"


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_every_quoted_number_is_printed_by_the_notebooks_glue(page):
    text = (REPO / "book" / f"{page.docname}.md").read_text(encoding="utf-8")
    quoted = {}
    for m in re.finditer(r"\{glue:text\}`([\w.-]+):?([^`]*)`", text):
        quoted.setdefault(m.group(1), []).append(m.group(2))
    if not quoted:
        pytest.skip(f"{page.docname} quotes no glued number")
    nb = read_notebook(page)
    cells = [source(c) for c in nb["cells"]]
    shim = next((c for c in cells if c.lstrip().startswith("# The book quotes numbers")), None)
    assert shim is not None, "no cell defines the notebook's own glue"
    namespace: dict = {}
    exec(shim, namespace)  # defines glue and _QUOTED
    for name, specs in quoted.items():
        assert namespace["_QUOTED"].get(name) == list(dict.fromkeys(specs)), (
            name,
            namespace["_QUOTED"].get(name),
        )
        assert any(f"`{name}` (printed " in c for c in cells), f"the prose no longer names `{name}`"


# --------------------------------------------------------------------------- in the built book


@pytest.mark.slow
@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_the_built_page_links_to_its_notebook(built_book, page):
    path = built_book.html / f"{page.docname}.html"
    assert path.exists(), f"{path} was not built"
    links = {htmllib.unescape(u) for u in COLAB_RE.findall(path.read_text(encoding="utf-8"))}
    assert links, f"{path.name} has no Colab button"
    assert links == {expected_colab_url(page)}, f"{path.name} links to {links}"
    target = repo_path_of(links.pop())
    assert target in repo_files(REPO), (
        f"the Colab link of {path.name} opens {target}, which is not in the repository"
    )


@pytest.mark.slow
@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.docname)
def test_the_book_build_does_not_execute_the_install_cell(built_book, page):
    # Read the executed notebook from jupyter-cache's own record: `_build/jupyter_execute/*.ipynb`
    # is rewritten without outputs by a later rebuild that takes its results from the cache
    # (the strict rebuild in test_book.py, say), although the pages keep them.
    from jupyter_cache import get_cache

    cache = get_cache(built_book.root / "_build" / ".jupyter_cache")
    source = (built_book.root / "book" / f"{page.docname}.md").resolve()
    records = [r for r in cache.list_cache_records() if Path(r.uri).resolve() == source]
    assert records, f"jupyter-cache holds no executed notebook for {source}"
    nb = cache.get_cache_bundle(max(records, key=lambda r: r.created).pk).nb
    cells = [c for c in nb.cells if c.cell_type == "code"]
    at = next((i for i, c in enumerate(cells) if sn.INSTALL_TAG in c.metadata.get("tags", [])), None)
    assert at is not None, f"no install cell in the executed {page.docname}"
    install, after = cells[at], cells[at + 1]
    assert install.get("execution_count") is None and not install.get("outputs"), (
        "the install cell was executed"
    )
    assert after.get("execution_count") is not None and after.get("outputs"), (
        "the cell after the install cell was not executed"
    )


# --------------------------------------------------------------------------- in a clean environment

DRIVER = textwrap.dedent(
    """
    # Runs one notebook the way a learner presses "Run all" in Colab: a fresh kernel, every cell
    # top to bottom, the exercise stubs included. Colab ignores cell tags; nbclient would skip
    # the install cell's `skip-execution`, so the tags go.
    import sys, nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    src, out, workdir = sys.argv[1:4]
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    probe = (
        "import importlib.util, sys, toy_lib\\n"
        "print('PROBE', sys.prefix, toy_lib.__file__, importlib.util.find_spec('myst_nb') is None, sep='|')"
    )
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": workdir}})
    try:
        client.execute()
    except CellExecutionError as err:
        print(str(err)[-4000:])
        sys.exit(1)
    finally:
        nbformat.write(nb, out)
    """
)


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def _printed(cell: dict) -> str:
    return "".join(
        "".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream"
    )


@pytest.mark.slow
def test_each_notebook_runs_in_a_clean_environment(tmp_path, built_book):
    """Each chapter's notebook, run top to bottom in a fresh venv that starts with torch only.

    Every cell runs, the exercise stubs too: their checkers print "not attempted yet". No
    solution runs (solutions are folded text). The numbers the prose quotes are printed, as
    `name = value` in the format the prose uses. myst-nb is never installed.

    To keep CI time low, `TOY_LIB_CACHE_DIR` points at the result cache of the book this test
    session built (`built_book.root / "_build" / ".toy_lib_cache"`), so the chapter's
    `cached_train` runs reuse the build's trained results instead of training again; the copy of
    toy_lib that the install cell installs has the same source, hence the same cache keys.
    """
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    # What Colab has before the install cell runs: torch and a Jupyter kernel, not toy_lib.
    _run(
        [str(python), "-m", "pip", "install", "--quiet", TORCH, "ipykernel", "nbclient", "nbformat"],
        timeout=900,
    )
    missing = subprocess.run([str(python), "-c", "import toy_lib"], capture_output=True, cwd=tmp_path)
    assert missing.returncode != 0, "toy_lib is importable before the install cell ran"

    tree = copy_repo(tmp_path / "tree")  # what a clone of the repository holds
    # One torch thread: the models are tiny, and on a busy 2-core machine two spinning threads per
    # process only slow every process down.
    env = {
        **os.environ,
        sn.TARGET_ENV: str(tree),
        "OMP_NUM_THREADS": "1",
        "TOY_LIB_CACHE_DIR": str(built_book.root / "_build" / ".toy_lib_cache"),
    }
    # (no MPLBACKEND: the kernel's inline backend draws the figures, as Colab's does)
    for var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MPLBACKEND"):
        env.pop(var, None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    workdir = tmp_path / "work"  # not the repository: toy_lib must come from the install
    workdir.mkdir()

    for page in CHAPTERS:
        src = REPO / "book" / f"{page.docname}.ipynb"
        out = tmp_path / f"{page.docname}.executed.ipynb"
        proc = subprocess.run(
            [str(python), str(tmp_path / "driver.py"), str(src), str(out), str(workdir)],
            capture_output=True,
            text=True,
            env=env,
            cwd=workdir,
            timeout=1800,
        )
        assert proc.returncode == 0, (
            f"{src.name} failed in a clean environment:\n{(proc.stdout + proc.stderr)[-5000:]}"
        )
        nb = json.loads(out.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{src.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        unrun = [source(c)[:80] for c in code[1:] if c.get("execution_count") is None]
        assert not unrun, f"{src.name}: cells that did not run: {unrun}"
        text = "".join(_printed(c) for c in code)

        probe = re.search(r"PROBE\|(.+?)\|(.+?)\|(True|False)", text)
        assert probe, f"the probe cell printed nothing:\n{text[-2000:]}"
        prefix, toy_lib_file, no_myst_nb = probe.group(1).strip(), probe.group(2).strip(), probe.group(3)
        assert Path(prefix).resolve() == venv.resolve(), f"the kernel ran in {prefix}, not the clean venv"
        assert "site-packages" in toy_lib_file and str(REPO) not in toy_lib_file, (
            f"toy_lib was imported from {toy_lib_file}, not installed by the install cell"
        )
        assert no_myst_nb == "True", "myst-nb got installed: the Colab edition must not need it"

        # Every stub ran and its checker reported it as not attempted; no solution ran (a
        # checker that passes prints "passed", which only a solution could make it do).
        stubs, _, _ = chapter_parts(page)
        stub_outputs = [_printed(c) for c in code if norm(source(c)) in {norm(s) for s in stubs}]
        assert len(stub_outputs) == len(stubs), f"{src.name}: {len(stub_outputs)} of {len(stubs)} stubs found"
        assert all("not attempted yet" in o for o in stub_outputs), stub_outputs
        assert "passed" not in text, f"{src.name}: a checker passed, so a solution ran:\n{text[-2000:]}"

        # Every figure is drawn under its cell (the cell just above its "*Figure N: ...*" line).
        cells = nb["cells"]
        figures = [
            cells[i - 1]
            for i, c in enumerate(cells)
            if c["cell_type"] == "markdown"
            and source(c).startswith("*Figure ")
            and cells[i - 1]["cell_type"] == "code"
        ]
        assert figures, f"{src.name}: no figure cell found"
        for cell in figures:
            kinds = {k for o in cell.get("outputs", []) for k in o.get("data", {})}
            assert "image/png" in kinds, f"{src.name}: no figure drawn under\n{source(cell)[:200]}"

        # The quoted numbers are printed, formatted as the prose formats them. A number that only
        # a solution's code computes is printed when the reader runs that solution (folded text,
        # never run here); the notebook says so where the prose quotes it.
        md = (REPO / "book" / f"{page.docname}.md").read_text(encoding="utf-8")
        glued_in = ce.scan_page(page.docname, md).glue_cells
        markdown = "".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
        for name, spec in set(re.findall(r"\{glue:text\}`([\w.-]+):([^`]*)`", md)):
            if glued_in.get(name) == {"solution"}:
                assert f"`{name}` (printed by the solution's code)" in markdown, name
                assert re.search(rf"glue\(\s*[\"']{re.escape(name)}[\"']", markdown), name
                continue
            m = re.search(rf"^{re.escape(name)} = (.+)$", text, re.MULTILINE)
            assert m, f"{src.name}: `{name}` is quoted by the prose but never printed:\n{text[-3000:]}"
            shown = m.group(1).split(", ")
            assert any(format(_shown_value(v, spec), spec) == v for v in shown), (
                f"{name} = {shown}: none is formatted as {spec!r}"
            )
