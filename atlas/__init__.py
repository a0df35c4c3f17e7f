"""Attention Atlas: measure every attention head of a transformer and write a static site.

``atlas.build(input, output)`` is the library's entry point (the ``atlas`` command calls it), its
options keywords or one ``atlas.BuildOptions``;
``atlas.load(site)`` reads a site's atlas.json back into the Atlas; ``atlas.show(text)`` and
``atlas.show(site, sentence=N)`` show a sentence's views in a notebook.
"""

__version__ = "0.2.0"

from .build import build, render_site
from .notebook import show
from .options import BuildOptions
from .result import Atlas, load

__all__ = ["Atlas", "BuildOptions", "__version__", "build", "load", "render_site", "show"]
