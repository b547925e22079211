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
an exercise with ``:class: core`` or ``:class: stretch`` carries a matching badge, a real
``<span class="book-badge core">core</span>`` in its title (added by
`ExerciseBadges`), so screen readers read it and accessibility checkers can measure its
contrast. (A badge drawn in the title's ``::before`` would take the place of the theme's title
background layer, which is exactly that pseudo-element, and paint the whole bar.)

Registered in _config.yml under ``sphinx: local_extensions: {book_boxes: book/_ext}``; the path
is relative to the folder of _config.yml (the repository root).
"""

from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
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


#: The exercise classes that earn a badge, each shown as its own name.
BADGES = ("core", "stretch")


class ExerciseBadges(SphinxPostTransform):
    """Put a ``book-badge`` span in the title of every exercise marked core or stretch."""

    # After sphinx-exercise has written the exercises' and solutions' titles (priorities 20-22),
    # so a solution's title, copied from its exercise's, carries no badge.
    default_priority = 100
    formats = ("html",)

    def run(self) -> None:
        for node in self.document.findall(nodes.Element):
            classes = node.get("classes", [])
            kinds = [c for c in BADGES if c in classes]
            if "exercise" not in classes or not kinds or not node.children:
                continue
            title = node.children[0]
            if isinstance(title, nodes.title) and not any(
                "book-badge" in c.get("classes", []) for c in title.findall(nodes.inline)
            ):
                # First in the title, so that it floats to the right of the title's first line
                # (the HTML writer puts the "Exercise N" number before it: read "Exercise 6,
                # stretch, (Why two fifths?)").
                title.insert(0, nodes.inline(kinds[0], kinds[0], classes=["book-badge", kinds[0]]))


def setup(app: Sphinx) -> dict:
    for name in BOX_TITLES:
        app.add_directive(name, BookBox)
    app.add_post_transform(ExerciseBadges)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
