"""Suite-wide settings: hypothesis runs derandomized in CI, and every run says how to replay it.

In CI (the CI environment variable is set, as `.ci/run` runs) the `ci` profile draws the same
examples on every run, so a red build is the code's doing, not the draw's. Elsewhere the `dev`
profile draws fresh examples; the report header names the profile and the seed, and a failing
example prints its reproduction blob (`@reproduce_failure`). Replay a dev run with
`pytest --hypothesis-seed=N`, or pick a profile with `--hypothesis-profile=ci`.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _hypothesis_line(config: pytest.Config) -> str:
    s = settings()
    seed = config.getoption("hypothesis_seed", None)
    if s.derandomize:
        how = "derandomized (a fixed seed per test)"
    elif seed is not None:
        how = f"seed {seed}"
    else:
        how = "a random seed per test (a failing example prints how to reproduce it)"
    return f"hypothesis: profile {settings._current_profile}, {how}"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    # The summary, unlike the report header, is shown under -q as well.
    terminalreporter.write_line(_hypothesis_line(config))
