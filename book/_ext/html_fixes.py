"""Two fixes to the HTML that Sphinx 7.4 and docutils 0.21 (the versions Jupyter Book 1.x pins)
write, each at the point where the faulty markup is made. tests/test_pages.py proves both in a
browser, on every page.

1. Each inline ``<script>`` once per page. An inline script that an extension registers after
   the HTML builder has started (``app.add_js_file(None, body=...)`` in a ``builder-inited`` or
   ``env-before-read-docs`` handler) is stored on the builder with the file name ``None``; then
   ``StandaloneHTMLBuilder.prepare_writing`` adds every registered script again, with the file
   name ``""``. The two no longer compare equal, so both land in ``<head>``. sphinx-thebe's
   configuration script is one of them, and its second copy throws ``SyntaxError: Identifier
   'THEBE_JS_URL' has already been declared`` in every reader's console (sphinx-togglebutton's
   ``var togglebuttonSelector`` line is doubled the same way, silently). Before a page is
   rendered, a script equal to an earlier one once the two spellings of "no file" are treated
   alike is dropped; scripts that differ in anything (file, body, priority, attributes) are all
   kept, in their order.

2. A role screen readers know on the entries of the bibliography. docutils writes each citation
   as ``<div role="doc-biblioentry">`` inside ``<div role="list">``; ``doc-biblioentry`` is
   deprecated in DPUB-ARIA 1.1, so a list holds no list items, which axe reports as a critical
   violation (``aria-required-children``). The entries are written with ``role="listitem"``
   instead; everything else about the markup is docutils' own.

Registered in ``_config.yml`` under ``sphinx: local_extensions``.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.writers.html5 import HTML5Translator

# ----------------------------------------------------------------------------- 1. scripts


def _script_key(js: Any) -> tuple:
    """What makes two scripts the same: file (``None`` and ``""`` alike), priority, attributes."""
    attributes = getattr(js, "attributes", {}) or {}
    return (
        getattr(js, "filename", js) or "",
        getattr(js, "priority", None),
        tuple(sorted((k, str(v)) for k, v in attributes.items())),
    )


def unique_scripts(scripts: list) -> list:
    """``scripts`` without repeats (the first of each kept, order unchanged)."""
    seen: set[tuple] = set()
    kept = []
    for js in scripts:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            kept.append(js)
    return kept


def _drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        # In place: this list is the builder's, which it restores after each page.
        scripts[:] = unique_scripts(scripts)


# ----------------------------------------------------------------------------- 2. citations


def visit_citation(self: HTML5Translator, node: nodes.citation) -> None:
    HTML5Translator.visit_citation(self, node)
    self.body[-1] = self.body[-1].replace('role="doc-biblioentry"', 'role="listitem"', 1)


def setup(app: Sphinx) -> dict:
    # Late (priority 900), after every other extension has added its page scripts.
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    app.add_node(nodes.citation, override=True, html=(visit_citation, HTML5Translator.depart_citation))
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
