"""The book's figures as a reader sees them: readable at the column width, in a real browser.

Every page of the book (the landing page and every chapter), opened in headless Chromium at a
1280 x 900 window (the narrowest desktop layout, where the text column is narrowest), with every
folded solution and hidden cell opened and, separately, with JavaScript off (the landing page
then shows its still figure instead of the live widget). For every figure the build made
(an image under ``_images/``) that is on screen:

- its natural width is at most the column (`plots.COLUMN_WIDTH` at `plots.DPI`), give or take a
  few percent (matplotlib's cropping to the contents), so it is never shrunk much;
- text of `plots.FONT_SIZE` points in it is displayed at least as large as the page's body
  text: ``FONT_SIZE * DPI / 72`` image pixels, times the displayed width over the natural
  width, at least the body's font size in CSS pixels.

toy_lib.plots draws every figure at `DPI` with no text below `FONT_SIZE` (tests/test_plots.py),
so these two together say that no text in any figure is smaller than the body text.

Needs Debian's `chromium` (tests/browser.py) and the `playwright` Python package; the `site` and
`browser` fixtures come from tests/conftest.py.
"""

from __future__ import annotations

import sys

import pytest
from conftest import REPO

from toy_lib import plots

sys.path.insert(0, str(REPO / "scripts"))
import sync_notebooks as sn  # noqa: E402  (the one reader of _toc.yml)

pytestmark = pytest.mark.slow

#: How much wider than the column a figure may be before the browser shrinks it (cropping to
#: the contents adds a margin of a few pixels).
WIDTH_SLACK = 1.03
PAGES = ["index.html"] + [f"{page.docname}.html" for page in sn.chapter_pages(REPO)]


def measure(browser, base: str, name: str, javascript: bool) -> dict:
    """Open page ``name`` of the book served at ``base``, at 1280 x 900; with JavaScript, unfold every solution and hidden cell.
    Returns the body text's font size and, for every figure of the build, its natural and
    displayed widths."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=javascript)
    page = context.new_page()
    # The book's own files only (the theme asks a CDN for its math engine; not needed here).
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
    page.goto(base + name)
    page.wait_for_load_state("load")
    if javascript:
        for button in page.locator("button.toggle-button").all():
            if button.is_visible() and button.get_attribute("aria-expanded") != "true":
                button.click()
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        page.wait_for_timeout(300)
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    found = page.evaluate(
        """() => {
            const para = document.querySelector('article p');
            const images = [...document.querySelectorAll('article img')]
                .filter(i => i.getAttribute('src').includes('_images/'))
                .map(i => ({src: i.getAttribute('src'), natural: i.naturalWidth,
                            shown: i.getBoundingClientRect().width}));
            return {body: parseFloat(getComputedStyle(para).fontSize), images};
        }"""
    )
    context.close()
    return found


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("page", PAGES)
def test_figures_are_readable_at_the_column_width(browser, site, page, javascript):
    found = measure(browser, site, page, javascript)
    body = found["body"]
    shown = [img for img in found["images"] if img["shown"] > 0]
    if page != "index.html":
        assert shown, f"{page}: no figure on the page"
    problems = []
    for img in shown:
        assert img["natural"] > 0, f"{page}: {img['src']} did not load"
        widest = plots.COLUMN_WIDTH * plots.DPI * WIDTH_SLACK
        if img["natural"] > widest:
            problems.append(f"{img['src']}: {img['natural']} px wide, more than the column's {widest:.0f}")
        smallest = plots.FONT_SIZE * plots.DPI / 72 * img["shown"] / img["natural"]
        if smallest < body - 1e-6:
            problems.append(
                f"{img['src']}: shown at {img['shown']:.0f} of its {img['natural']} px, so its "
                f"{plots.FONT_SIZE} pt text is {smallest:.1f} px, smaller than the {body:g} px body text"
            )
    assert not problems, f"{page} ({'with' if javascript else 'without'} JavaScript):\n" + "\n".join(problems)


def test_every_chapter_figure_is_measured(browser, site):
    """The check above sees the figures inside folded solutions too (they are unfolded)."""
    for page in PAGES[1:]:
        found = measure(browser, site, page, javascript=True)
        hidden = [img["src"] for img in found["images"] if img["shown"] == 0]
        assert not hidden, f"{page}: figures still hidden after unfolding everything: {hidden}"
