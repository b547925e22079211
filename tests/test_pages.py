"""Every page of the built book, in a real browser, as a reader offline would see it.

Each page of the table of contents (read through scripts/sync_notebooks.py's `toc_pages`, the one
toc reader, so a new chapter is covered as soon as it is listed), the API reference, and the
theme's search and index pages are served from 127.0.0.1 and opened in Debian's Chromium, in the
light and the dark colour scheme, with every request to any other host blocked and counted
(tests/browser.py's `PageLog`). On every page:

- math is typeset by the book's own MathJax (`_static/mathjax`): every formula Sphinx wrote
  holds MathJax's output, and no raw ``\\(``, ``\\[``, ``$$`` or ``\\begin{`` is left in the text;
- every box's and exercise's title bar reads at 4.5:1 contrast, and every core or stretch
  exercise carries a badge that covers neither its icon nor its text (``TITLE_REPORT``);
- no request was blocked, nothing was logged with ``console.error`` and nothing was thrown:
  there is no whitelist;
- axe-core (bundled in the `axe-playwright-python` package; it needs no network) finds no
  serious or critical accessibility violation. The others are printed (``pytest -s``).

One page is also opened straight from disk (file://), as the README suggests, and its math must
typeset there too. Screenshots of a core and a stretch exercise are saved to
_build/test-artifacts/ for a person to look at.

Needs Debian's `chromium` (`python scripts/setup.py --tests` installs it; or set TOY_CHROMIUM)
and the `playwright` Python package; no browser is ever downloaded.
"""

from __future__ import annotations

import shutil
import sys

import pytest
from axe_playwright_python.sync_playwright import Axe
from browser import PageLog
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import sync_notebooks as sn  # noqa: E402  (the one reader of _toc.yml)

pytestmark = pytest.mark.slow

#: Screenshots land here (git-ignored), so CI can keep them as artifacts.
ARTIFACTS = REPO / "_build" / "test-artifacts"
#: axe's impact levels that fail the test; "moderate" and "minor" are reported only.
FAILING_IMPACTS = ("serious", "critical")
#: Pages the theme makes besides the toc's, reachable from every page's header.
THEME_PAGES = ["search", "genindex"]


def page_names() -> list[str]:
    names = [p.docname for p in sn.toc_pages(REPO)]
    if "api" not in names:  # the API reference is a page readers must be able to use
        names.append("api")
    return names + THEME_PAGES


PAGES = page_names()
SCHEMES = ["light", "dark"]

#: Reports, for the page that is open: how many formulas Sphinx wrote (``.math``), which of them
#: MathJax did not typeset, and text nodes outside code that still hold TeX delimiters.
MATH_REPORT = r"""async () => {
    const formulas = Array.from(document.querySelectorAll('span.math, div.math'));
    const report = {formulas: formulas.length, started: false, untypeset: [], raw: []};
    if (formulas.length && window.MathJax && MathJax.startup && MathJax.startup.promise) {
        report.started = true;
        await MathJax.startup.promise;
    }
    report.untypeset = formulas.filter(f => !f.querySelector('mjx-container'))
                               .map(f => f.textContent.trim().slice(0, 80));
    const skip = 'pre, code, script, style, textarea, mjx-container, .pentagon-widget';
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (n.parentElement && n.parentElement.closest(skip)) continue;
        if (/\\\(|\\\[|\$\$|\\begin\{/.test(n.textContent)) report.raw.push(n.textContent.trim().slice(0, 80));
    }
    return report;
}"""

#: The title bars of the boxes and exercises, which axe cannot judge: the theme paints a title's
#: background with its ``::before`` pseudo-element, whose colours axe leaves "to review". For
#: every visible ``.admonition-title``, the text colour against the background composited from
#: the page down through the title and its ``::before`` (WCAG contrast; 4.5:1 for this bold
#: 16 px text). For every exercise marked core or stretch: a ``.book-badge`` in its title, with
#: 4.5:1 contrast, clear of the icon (the title's left padding) and of the title's text.
TITLE_REPORT = r"""() => {
    const parse = (c) => {
        let m = c.match(/^rgba?\(([^)]*)\)$/);
        if (m) { const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
                 return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
        m = c.match(/^color\(srgb ([^)]*)\)$/);
        if (m) { const p = m[1].split(/[\s\/]+/).filter(Boolean).map(Number);
                 return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1]; }
        return null;
    };
    const over = (top, base) => [0, 1, 2].map(i => top[i] * top[3] + base[i] * (1 - top[3])).concat([1]);
    const lum = (c) => { const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
                         return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
    const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
    const problems = [];
    const contrast = (el, what, extraLayers) => {
        const chain = [];
        for (let e = el; e; e = e.parentElement) chain.unshift(e);
        let bg = [255, 255, 255, 1];
        const layers = chain.map(e => getComputedStyle(e).backgroundColor).concat(extraLayers);
        for (const layer of layers) {
            const c = parse(layer);
            if (!c) { problems.push(`${what}: cannot read the colour ${layer}`); return; }
            bg = over(c, bg);
        }
        const fg = parse(getComputedStyle(el).color);
        if (!fg) { problems.push(`${what}: cannot read the colour ${getComputedStyle(el).color}`); return; }
        const r = ratio(over(fg, bg), bg);
        if (r < 4.5) problems.push(`${what}: contrast ${r.toFixed(2)}:1 (text ${getComputedStyle(el).color} on rgb(${bg.slice(0, 3).map(Math.round)}))`);
    };
    const label = (t) => (t.textContent || '').trim().slice(0, 60);
    const visible = (el) => el.getClientRects().length > 0;
    for (const title of document.querySelectorAll('.admonition > .admonition-title')) {
        if (!visible(title)) continue;
        const before = getComputedStyle(title, '::before');
        contrast(title, `title "${label(title)}"`, before.content === 'none' ? [] : [before.backgroundColor]);
    }
    let badges = 0;
    for (const ex of document.querySelectorAll('.exercise.core, .exercise.stretch')) {
        const title = ex.querySelector(':scope > .admonition-title');
        const badge = title && title.querySelector('.book-badge');
        if (!badge) { problems.push(`exercise "${title ? label(title) : ex.id}": no .book-badge in its title`); continue; }
        badges += 1;
        if (!visible(badge)) continue;
        contrast(badge, `badge of "${label(title)}"`, []);
        const b = badge.getBoundingClientRect(), t = title.getBoundingClientRect();
        const iconEnd = t.left + parseFloat(getComputedStyle(title).paddingLeft);
        if (b.left < iconEnd) problems.push(`badge of "${label(title)}" reaches into the icon's place`);
        const walker = document.createTreeWalker(title, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            if (badge.contains(n) || !n.textContent.trim()) continue;
            const range = document.createRange();
            range.selectNodeContents(n);
            for (const r of range.getClientRects()) {
                if (r.left < b.right && b.left < r.right && r.top < b.bottom && b.top < r.bottom)
                    problems.push(`badge of "${label(title)}" covers the title text "${n.textContent.trim()}"`);
            }
        }
    }
    return {problems: problems, badges: badges};
}"""


@pytest.fixture(scope="module")
def axe():
    return Axe()


def open_page(browser, base: str, name: str, scheme: str = "light"):
    """A fresh context with ``name`` open and loaded; returns (context, page, log)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    log = PageLog(page, local=base)
    page.goto(f"{base}{name}.html", wait_until="load")
    return context, page, log


def check_math(page, name: str) -> dict:
    report = page.evaluate(MATH_REPORT)
    if report["formulas"]:
        assert report["started"], f"{name}: {report['formulas']} formulas, but MathJax never started"
        assert report["untypeset"] == [], f"{name}: formulas MathJax did not typeset: {report['untypeset']}"
    assert report["raw"] == [], f"{name}: raw TeX left in the text: {report['raw']}"
    return report


def check_titles(page, name: str) -> dict:
    report = page.evaluate(TITLE_REPORT)
    assert report["problems"] == [], f"{name}: title bars:\n" + "\n".join(report["problems"])
    return report


def audit(axe, page, name: str) -> None:
    violations = axe.run(page).response["violations"]
    failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
    for v in violations:
        if v not in failing:
            print(f"{name}: axe ({v['impact']}) {v['id']}: {v['help']} [{len(v['nodes'])} elements]")
    lines = []
    for v in failing:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} {v['helpUrl']}")
        for node in v["nodes"][:5]:
            lines.append(f"    {', '.join(map(str, node['target']))}: {node['failureSummary']}")
    assert not failing, f"{name}: serious or critical accessibility violations:\n" + "\n".join(lines)


# ----------------------------------------------------------------------------- every page


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", PAGES)
def test_page_is_offline_clean_and_accessible(browser, site, axe, name, scheme):
    context, page, log = open_page(browser, site, name, scheme)
    try:
        report = check_math(page, name)
        page.wait_for_load_state("networkidle")
        # What the page itself did, before axe runs (axe fetches stylesheets of its own).
        assert log.problems == [], f"{name} ({scheme}):\n" + "\n".join(log.problems)
        check_titles(page, f"{name} ({scheme})")
        audit(axe, page, f"{name} ({scheme})")
        print(f"{name} ({scheme}): {report['formulas']} formulas typeset")
    finally:
        context.close()


def test_the_book_has_math_to_typeset(built_book):
    """The check above is not vacuous: the chapters do write formulas for MathJax."""
    html = (built_book.html / "toy_models.html").read_text(encoding="utf-8")
    assert html.count('class="math notranslate') >= 10
    assert "_static/mathjax/" in html and "cdn." not in html


def test_math_typesets_from_disk(browser, built_book):
    """Opened from disk (file://, no server, no network), a chapter's math still typesets."""
    base = built_book.html.resolve().as_uri() + "/"
    context, page, log = open_page(browser, base, "toy_models")
    try:
        report = check_math(page, "toy_models (file://)")
        assert report["formulas"] > 0
        page.wait_for_load_state("networkidle")
        assert log.problems == [], "\n".join(log.problems)
    finally:
        context.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_exercise_title_screenshots(browser, site, built_book, scheme, tmp_path):
    """A screenshot of the first core and the first stretch exercise of the book, title bar and
    badge, for a person to look at (the checks above measure them on every page)."""
    kinds = {}
    for name in [p.docname for p in sn.chapter_pages(REPO)]:
        html = (built_book.html / f"{name}.html").read_text(encoding="utf-8")
        for kind in ("core", "stretch"):
            if kind not in kinds and f'class="exercise {kind}' in html:
                kinds[kind] = name
    assert set(kinds) == {"core", "stretch"}, f"the chapters have no core or no stretch exercise: {kinds}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for kind, name in kinds.items():
        context, page, log = open_page(browser, site, name, scheme)
        try:
            exercise = page.locator(f"div.exercise.{kind}").first
            exercise.scroll_into_view_if_needed()
            badge = exercise.locator(":scope > .admonition-title .book-badge")
            assert badge.inner_text() == kind
            path = tmp_path / f"exercise-{kind}-{scheme}.png"
            exercise.screenshot(path=str(path))
            shutil.copy(path, ARTIFACTS / path.name)
            assert path.stat().st_size > 1000
            assert log.problems == [], "\n".join(log.problems)
        finally:
            context.close()


def test_every_toc_page_is_opened():
    """A page listed in _toc.yml is opened above with no list to keep in step; so is the API."""
    toc = [p.docname for p in sn.toc_pages(REPO)]
    assert toc and set(toc) <= set(PAGES)
    assert "api" in PAGES and len(PAGES) == len(set(PAGES))
