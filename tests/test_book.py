"""The book builds from a clean copy with `jupyter-book build book/`, verbatim, and the toy-models
chapter's HTML holds its executed figures, no error output, and the numbers glued into the prose,
which agree with what the executed cells printed."""

from __future__ import annotations

import html as htmllib
import re

import numpy as np
import pytest
from conftest import build_book

pytestmark = pytest.mark.slow


def page_text(path) -> str:
    """Visible text of an HTML page (tags stripped, entities decoded)."""
    raw = path.read_text(encoding="utf-8")
    raw = re.sub(r"<script.*?</script>|<style.*?</style>", "", raw, flags=re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", raw))


@pytest.fixture(scope="module")
def chapter(built_book):
    path = built_book.html / "toy_models.html"
    assert path.exists(), f"no toy_models.html in {built_book.html}"
    return path


def test_chapter_holds_executed_figures(built_book, chapter):
    raw = chapter.read_text(encoding="utf-8")
    images = re.findall(r'<img[^>]+src="(_images/[^"]+\.png)"', raw)
    assert len(images) >= 3, f"expected the loss, arrows and WᵀW figures, found {images}"
    for src in images:
        png = built_book.html / src
        assert png.exists(), f"{src} is referenced but missing"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 5_000, f"{src} is suspiciously small"
    for name in ["fig-loss-curve", "fig-arrows", "fig-wtw"]:
        assert f'id="{name}"' in raw, f"figure {name} is missing from the page"


def test_chapter_has_no_error_output(chapter):
    raw = chapter.read_text(encoding="utf-8")
    assert "Traceback" not in raw
    assert "output error" not in raw and "output traceback" not in raw
    assert "glue:" not in page_text(chapter), "an unresolved glue role reached the page"


def test_build_log_has_no_sphinx_warnings(built_book):
    warnings = [line for line in built_book.log.splitlines() if re.search(r"\bWARNING:|\bERROR:", line)]
    assert not warnings, "the build printed warnings:\n" + "\n".join(warnings[:20])


def test_glued_numbers_match_the_executed_output(chapter):
    text = page_text(chapter)
    printed = re.search(r"angular gaps \(deg\):\s*\[([^\]]+)\]", text)
    assert printed, "the cell that prints the angular gaps did not run"
    gaps = np.array([float(v) for v in printed.group(1).split()])  # numpy prints "72." too
    prose = re.search(r"range from\s+(-?[\d.]+)°\s+to\s+(-?[\d.]+)°", text)
    assert prose, "the glued gap range is missing from the prose"
    lo, hi = float(prose.group(1)), float(prose.group(2))
    assert lo == pytest.approx(gaps.min(), abs=0.051) and hi == pytest.approx(gaps.max(), abs=0.051)
    assert 69 <= lo <= hi <= 75, f"the sparsest model is not a pentagon: gaps {lo}..{hi}"

    dims = re.search(r"feature dimensionality:\s*\[([^\]]+)\]\s*sum:\s*([\d.]+)", text)
    assert dims, "the cell that prints the dimensionalities did not run"
    dvals = np.array([float(v) for v in dims.group(1).split()])
    glued = re.search(r"lies between\s+([\d.]+)\s+and\s+([\d.]+).*?add up to\s+([\d.]+)", text, re.S)
    assert glued, "the glued dimensionalities are missing from the prose"
    assert float(glued.group(1)) == pytest.approx(dvals.min(), abs=0.0011)
    assert float(glued.group(2)) == pytest.approx(dvals.max(), abs=0.0011)
    assert float(glued.group(3)) == pytest.approx(float(dims.group(2)), abs=0.011)


def test_strict_rebuild_is_clean(built_book):
    """`-W -n --keep-going` re-reads every page (from the execution cache) and fails on any warning."""
    if built_book.log == "(reused build)":
        pytest.skip("TOY_BOOK_HTML reuses an existing build")
    proc = build_book(built_book.root, "-W", "-n", "--keep-going", "--all")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
