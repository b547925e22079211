"""Every chapter's "Open in Colab" button opens a real notebook that runs.

- The link the theme builds for each chapter points at `book/<chapter>.ipynb` on the repository
  and branch of `_config.yml`; that file is in the repository and in step with the chapter.
- Its first code cell installs toy_lib from that repository and branch, only in Colab (or when
  `TOY_LIB_INSTALL_TARGET` overrides the target), and the book build does not execute it.
- In a fresh virtual environment with nothing but torch (as Colab has) and a Jupyter kernel,
  each chapter's notebook runs top to bottom, its install cell installing toy_lib from a copy
  of the working tree.
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


def test_there_are_chapters():
    assert CHAPTERS, "no chapter found in _toc.yml"


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
def test_the_first_code_cell_installs_toy_lib_from_the_configured_repository(page):
    import jupytext

    url, branch, _ = sn.repository(REPO)
    for path in (REPO / "book" / f"{page.docname}.md", REPO / "book" / f"{page.docname}.ipynb"):
        nb = jupytext.read(path)
        first = next(c for c in nb.cells if c.cell_type == "code")
        tags = first.metadata.get("tags", [])
        assert "skip-execution" in tags and sn.INSTALL_TAG in tags, (
            f"{path.name}: first code cell tags {tags}"
        )
        assert f'"toy_lib @ git+{url}@{branch}"' in first.source, f"{path.name}:\n{first.source}"
        assert '"google.colab" in sys.modules' in first.source
        assert "os.environ.get(" in first.source and f'"{sn.TARGET_ENV}"' in first.source
        assert "%pip install" in first.source and "myst-nb" in first.source


def test_the_install_cell_does_nothing_outside_colab(tmp_path):
    """Run outside Colab with no override, the cell must not install anything."""
    source = sn.install_cell(REPO).split("\n", 3)[3].rsplit("```", 1)[0]
    script = source.replace("%pip install", "raise SystemExit(3)  #")
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


def test_the_notebooks_are_in_step(tmp_path):
    stale = sn.sync(REPO, check=True)
    assert not stale, "\n".join(stale)


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
    # Runs one notebook the way a learner would: a fresh kernel, top to bottom. The install cell
    # runs (its skip-execution tag is dropped); other skip-execution cells, the exercise
    # skeletons a learner fills in, are skipped as in the book build.
    import sys, nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    src, out, workdir = sys.argv[1:4]
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "colab-install" in tags:
            cell.metadata["tags"] = [t for t in tags if t != "skip-execution"]
    probe = "import sys, toy_lib, myst_nb; print('PROBE', sys.prefix, toy_lib.__file__, sep='|')"
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


@pytest.mark.slow
def test_each_notebook_runs_in_a_clean_environment(tmp_path):
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    # What Colab has before the install cell runs: torch and a Jupyter kernel, not toy_lib, not myst-nb.
    _run(
        [str(python), "-m", "pip", "install", "--quiet", TORCH, "ipykernel", "nbclient", "nbformat"],
        timeout=900,
    )
    missing = subprocess.run([str(python), "-c", "import toy_lib"], capture_output=True, cwd=tmp_path)
    assert missing.returncode != 0, "toy_lib is importable before the install cell ran"

    tree = copy_repo(tmp_path / "tree")  # what a clone of the repository holds
    # One torch thread: the models are tiny, and on a busy 2-core machine two spinning threads per
    # process only slow every process down.
    env = {**os.environ, sn.TARGET_ENV: str(tree), "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1"}
    for var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
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
        text = "".join(
            "".join(o.get("text", ""))
            for c in nb["cells"]
            if c["cell_type"] == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "stream"
        )
        probe = re.search(r"PROBE\|(.+?)\|(.+)", text)
        assert probe, f"the probe cell printed nothing:\n{text[-2000:]}"
        prefix, toy_lib_file = probe.group(1).strip(), probe.group(2).strip()
        assert Path(prefix).resolve() == venv.resolve(), f"the kernel ran in {prefix}, not the clean venv"
        assert "site-packages" in toy_lib_file and str(REPO) not in toy_lib_file, (
            f"toy_lib was imported from {toy_lib_file}, not installed by the install cell"
        )
        errors = [
            o
            for c in nb["cells"]
            if c["cell_type"] == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors, f"{src.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
