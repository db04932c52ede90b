"""The package's version, in one place.

``setup.cfg`` reads it from here (``version = attr: snsmiddleware._version.__version__``,
which setuptools parses without importing the package), so the built metadata, the
``snsmiddleware --version`` flag and ``snsmiddleware.__version__`` cannot disagree. A plain
literal rather than ``importlib.metadata``: no import cost, and right in a source checkout
that was never installed.
"""

from __future__ import annotations

__version__ = "0.1.0"
