"""Sphinx configuration of fastgrad's API reference, built from the numpydoc docstrings.

Build it with ``python -m sphinx -W -b html docs/api <folder>`` (``pip install ".[docs]"``);
``tests/test_docs.py`` does so with warnings as errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The checkout's package, not an older installed copy, when built from a clone.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fastgrad.version import __version__  # noqa: E402

project = "fastgrad"
author = "the fastgrad authors"
copyright = "the fastgrad authors"
version = release = __version__

extensions = ["sphinx.ext.autodoc", "numpydoc"]

# Members are listed on each page explicitly; numpydoc's own member tables would
# repeat them (and need autosummary stubs).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures carry them; numpydoc's Parameters say them in words
autodoc_default_options = {"members": False}

html_theme = "alabaster"
html_title = f"fastgrad {__version__} API reference"
exclude_patterns = ["_build"]
