"""Fixtures for the dashboard's tests (builders in uikit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uikit import CHROMIUM, CHROMIUM_ARGS, UiEnv, require_chromium


@pytest.fixture
def ui_env(tmp_path: Path) -> Iterator[UiEnv]:
    e = UiEnv(f"sqlite:///{tmp_path / 'cortex.db'}", tmp_path)
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
