"""`python -m cortex.training.optimus --config tiny|small|large`: see cortex.training.cli."""

from __future__ import annotations

import sys

from cortex.training.cli import main

if __name__ == "__main__":
    sys.exit(main("optimus"))
