"""Cortex: the operating layer for AI training superclusters."""

import os as _os

__version__ = "0.1.0"

# The opt-in compiled core (cortex/compiled.py, built by `python -m cortex.compile`): used only
# when asked for and only if it matches the sources byte for byte; otherwise pure Python.
if _os.environ.get("CORTEX_COMPILED") == "1":
    from cortex import compiled as _compiled

    _compiled.install()
