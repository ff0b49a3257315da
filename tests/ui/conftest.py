"""Fixtures for the dashboard's tests (builders in uikit.py)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uikit import CHROMIUM, CHROMIUM_ARGS, LiveUi, Page, UiEnv, browsing, require_chromium

_counter = itertools.count()


@pytest.fixture
def ui_env(tmp_path: Path) -> Iterator[UiEnv]:
    e = UiEnv(f"sqlite:///{tmp_path / 'cortex.db'}", tmp_path)
    yield e
    e.svc.close()


@pytest.fixture
def page(browser: Any, live: LiveUi) -> Iterator[Page]:
    """A page on the module's `live` server (each browser test module defines `live`)."""
    with browsing(browser, live.base) as p:
        yield p


@pytest.fixture(scope="session")
def ui_pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session, as tests/control/conftest.py starts one
    (its fixtures are out of this directory's reach)."""
    from cortex.control.devpg import ThrowawayPostgres, find_bin

    binp = find_bin()
    missing = pytest.fail if os.environ.get("CORTEX_REQUIRE_POSTGRES") else pytest.skip
    if binp is None:
        missing("PostgreSQL binaries not found under /usr/lib/postgresql")
    assert binp is not None
    pg = ThrowawayPostgres(binp, durable=False)
    try:
        yield pg.start()
    finally:
        pg.stop("immediate")


@pytest.fixture(params=["sqlite", "postgres"])
def ui_env_any(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UiEnv]:
    """The dashboard's store reads (control/store_ui.py) on both backends."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cortex.db'}"
    else:
        import psycopg

        base = request.getfixturevalue("ui_pg_server")
        name = f"cortex_ui_{os.getpid()}_{next(_counter)}"
        admin = base.replace("postgresql+psycopg", "postgresql") + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{base}/{name}"
    e = UiEnv(url, tmp_path)
    yield e
    e.svc.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module (launching takes about a second on 2 cores)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
