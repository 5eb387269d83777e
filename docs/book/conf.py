"""Sphinx configuration of the book (``make book``; staged and built by ``mislib.infra.book``).

The stored notebooks are rendered as they are (no execution). Nothing is loaded from a content delivery network:
MathJax is the copy vendored from the npm registry into ``_static/mathjax``, and the widget manager script that
myst-nb would fetch from a CDN is turned off (widgets show their static fallback).
"""

project = "mislib: membership inference security of quantized models"
author = "mislib authors"
root_doc = "index"
extensions = ["myst_nb"]
nb_execution_mode = "off"
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_static_path = ["_static"]
html_show_sphinx = False
html_theme_options = {"show_relbars": True, "font_family": "sans-serif", "head_font_family": "sans-serif",
                      "code_font_family": "monospace"}
html_sidebars = {"**": ["navigation.html", "relations.html", "searchbox.html"]}
mathjax_path = "mathjax/tex-mml-chtml.js"
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]


def setup(app):
    # MathJax on every page, not only on pages with maths: the navigation shows notebook titles with maths.
    app.set_html_assets_policy("always")
