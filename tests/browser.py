"""A real browser for the book's browser tests and the widgets' benchmarks: Debian's Chromium,
driven by Playwright, against the built book served from 127.0.0.1. Never downloads a browser.

Used by tests/test_pages.py, tests/test_widget.py, tests/test_sae_widget.py and the benchmarks
benchmarks/widget_time_to_pentagon.py.
`python scripts/setup.py --tests` (part of the README's test command) installs Debian's chromium
when it is missing.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from setup import chromium_path  # noqa: E402  (one place names the browser)

#: Screenshots the browser tests save land here too (git-ignored), so CI can keep them as artifacts.
ARTIFACTS = Path(__file__).resolve().parents[1] / "_build" / "test-artifacts"

#: Debian's chromium; set TOY_CHROMIUM to use another Chromium or Chrome binary.
CHROMIUM = chromium_path()
#: Headless as root, and nothing that reaches for the network on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test and benchmark output clean
        pass


class _Server(http.server.ThreadingHTTPServer):
    # Chromium opens several connections at once (MathJax's fonts, the theme's scripts); the
    # standard backlog of 5 can overflow on a busy machine and reset one of them.
    request_queue_size = 128


@contextlib.contextmanager
def serve(folder: str | Path) -> Iterator[str]:
    """Serve ``folder`` on a free port of 127.0.0.1; yields the base URL (ending in "/")."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(built_book):
    """The session's built book served on a free port of 127.0.0.1; yields the base URL.
    A fixture of the browser tests (registered by tests/conftest.py)."""
    with serve(built_book.html) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (`launch`) for the module's tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


def launch(playwright, executable: str = CHROMIUM):
    """A headless Chromium from ``executable``, with `CHROMIUM_ARGS`."""
    if not Path(executable).exists():
        raise FileNotFoundError(
            f"no Chromium at {executable}: run `python scripts/setup.py --tests` (it installs "
            "Debian's chromium, or says what to do), or set TOY_CHROMIUM; the tests never download "
            "a browser"
        )
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


class PageLog:
    """What a page did that a reader would not want, recorded while it is open.

    - ``blocked``: every request to a host other than the local server (``local``, a URL prefix
      such as ``http://127.0.0.1:8000/`` or a ``file://`` folder), aborted before it leaves the
      machine, plus any WebSocket the page opens;
    - ``console_errors``: messages the page logged with ``console.error`` (Chromium logs a failed
      load of a local file here too);
    - ``page_errors``: uncaught exceptions;
    - ``failed``: local files the server answered with an error status (4xx, 5xx), with the URL
      that Chromium's console message leaves out.

    Nothing is whitelisted: `problems` lists all four, and a clean page has none.
    """

    def __init__(self, page, local: str):
        self.local = local
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("websocket", lambda ws: self.blocked.append(ws.url))
        # Everything that does not start with the local prefix (data: and blob: URLs never reach
        # the router; Playwright routes http(s) requests only).
        page.route(re.compile("^(?!" + re.escape(local) + ")"), self._block)

    def _block(self, route):
        self.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed local loads."""
        return (
            [f"console error: {t}" for t in self.console_errors]
            + [f"uncaught: {t}" for t in self.page_errors]
            + [f"failed: {t}" for t in self.failed]
        )

    @property
    def problems(self) -> list[str]:
        """`errors` and every blocked request: all a clean page has none of."""
        return [f"blocked request: {u}" for u in self.blocked] + self.errors


class WidgetTab:
    """A page of the built book with one live widget on it, and what the page logged.

    Subclasses name the widget's root element (`selector`) and the property of that element that
    holds the live widget (`handle`: ``"pentagon"``, ``"sae"``), and say what `state` reads.
    ``errors`` are the page's console errors, uncaught exceptions and failed loads (`PageLog`, no
    whitelist); ``outside`` every request to a host other than the local server, blocked before
    it leaves the machine.
    """

    selector = ""
    handle = ""

    def __init__(self, page, base: str):
        self.page = page
        self.base = base
        self.log = PageLog(page, local=base)
        self.outside = self.log.blocked

    @property
    def errors(self) -> list[str]:
        return self.log.errors

    @property
    def live(self) -> str:
        """The JavaScript expression for the live widget."""
        return f"document.querySelector('{self.selector}').{self.handle}"

    def open(self, name: str):
        self.page.goto(self.base + name)
        self.widget = self.page.locator(self.selector)
        assert self.widget.count() == 1, f"{name}: expected one {self.selector}, found {self.widget.count()}"
        self.page.wait_for_function(f"{self.live} !== undefined")
        return self

    def show(self):
        """Scroll the widget on screen: it trains only while visible."""
        self.widget.scroll_into_view_if_needed()
        return self

    def state(self) -> dict:
        raise NotImplementedError

    def shown_text(self, cls: str) -> str:
        """The text of the widget's element of class ``cls``, as the reader sees it."""
        return self.page.locator(f"{self.selector} .{cls}").inner_text()

    def wait_for_step(self, at_least: int, timeout_s: float = 60.0) -> dict:
        self.page.wait_for_function(f"{self.live}.step >= {at_least}", timeout=timeout_s * 1000)
        return self.state()


def save_screenshot(locator, tmp_path: Path, name: str) -> Path:
    """A screenshot of ``locator`` in ``tmp_path``, copied to `ARTIFACTS`."""
    path = tmp_path / name
    locator.screenshot(path=str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return path
