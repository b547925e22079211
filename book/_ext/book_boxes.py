"""The book's three boxes: "What you should see", "Core" and "Stretch", defined once.

Every chapter marks its parts the same way::

    ```{what-you-should-see}
    At S = 0 two arrows of length about 1 at right angles ...
    ```

    ```{core}
    Read up to "Measuring the geometry" and do the exercises marked core.
    ```

    ```{stretch} The interference matrix
    This section and the exercises marked stretch go further ...
    ```

Each directive renders as an admonition with a fixed title ("What you should see", "Core",
"Stretch"); an optional argument is appended to the title after a colon. The classes on the
HTML are ``book-box`` plus the directive's name, and book/_static/boxes.css styles them (Jupyter
Book includes every CSS file under ``_static`` in every page). Exercises get the same colours:
an exercise with ``:class: core`` or ``:class: stretch`` carries a matching badge.

Registered in _config.yml under ``sphinx: local_extensions: {book_boxes: book/_ext}``; the path
is relative to the folder of _config.yml (the repository root).
"""

from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: directive name -> the title every box of that kind carries.
BOX_TITLES = {
    "what-you-should-see": "What you should see",
    "core": "Core",
    "stretch": "Stretch",
}


class BookBox(SphinxDirective):
    """An admonition with a fixed title, a fixed class and the book's own style."""

    has_content = True
    required_arguments = 0
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {"class": directives.class_option, "name": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        if not self.content:
            raise self.error(f"The {self.name!r} box is empty: write what the reader should know.")
        title_text = BOX_TITLES[self.name]
        if self.arguments:
            title_text = f"{title_text}: {self.arguments[0]}"
        node = nodes.admonition("\n".join(self.content))
        node["classes"] += ["book-box", self.name, *self.options.get("class", [])]
        textnodes, messages = self.state.inline_text(title_text, self.lineno)
        title = nodes.title(title_text, "", *textnodes)
        title.source, title.line = self.state_machine.get_source_and_line(self.lineno)
        node += title
        node += messages
        self.set_source_info(node)
        self.add_name(node)
        self.state.nested_parse(self.content, self.content_offset, node)
        return [node]


def setup(app: Sphinx) -> dict:
    for name in BOX_TITLES:
        app.add_directive(name, BookBox)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
