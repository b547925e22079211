"""A real browser for the widget's tests and benchmark: Debian's Chromium, driven by Playwright,
against the built book served from 127.0.0.1. Never downloads a browser.

Used by tests/test_widget.py and benchmarks/widget_time_to_pentagon.py.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

#: Debian's chromium; set TOY_CHROMIUM to use another Chromium or Chrome binary.
CHROMIUM = os.environ.get("TOY_CHROMIUM", "/usr/bin/chromium")
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


@contextlib.contextmanager
def serve(folder: str | Path) -> Iterator[str]:
    """Serve ``folder`` on a free port of 127.0.0.1; yields the base URL (ending in "/")."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def launch(playwright, executable: str = CHROMIUM):
    """A headless Chromium from ``executable``, with `CHROMIUM_ARGS`."""
    if not Path(executable).exists():
        raise FileNotFoundError(
            f"no Chromium at {executable}: install Debian's (`apt-get install -y chromium`) or set "
            "TOY_CHROMIUM; the tests never download a browser"
        )
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
