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


@pytest.fixture
def frozen_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's views (Snapshot, Start, Allocation, PowerView, Grant, CapJob) refuse a
    field's re-assignment for the length of the test (tests/frozen_views.py)."""
    import frozen_views  # here, not at the top: conftest would import the scheduler for every test

    frozen_views.guard(monkeypatch)


# CORTEX_FROZEN_VIEWS=1 guards the views in every test, to sweep a suite for writes
# (`CORTEX_FROZEN_VIEWS=1 pytest tests/scenarios`); a test that builds or edits views itself may
# then fail for its own writes, which the traceback tells apart from the code's.
if os.environ.get("CORTEX_FROZEN_VIEWS"):

    @pytest.fixture(autouse=True)
    def _frozen_views_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
        import frozen_views

        frozen_views.guard(monkeypatch)


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


_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # In CI, end the process with the tests' own status once pytest is done, skipping the
    # interpreter's finalization: with Ray's gRPC threads and torch loaded it segfaulted once
    # after all 2,911 tests had passed and their summary was printed (exit 139, a red build
    # that no test caused). Every fixture and plugin has finished by now (trylast). Locally
    # the process ends normally, so such a crash is still seen where it can be studied.
    if os.environ.get("CI") and _EXIT_STATUS in config.stash:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])
