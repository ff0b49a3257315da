"""The dashboard in the real `cortex serve` (a subprocess on 127.0.0.1, the control-plane
end-to-end tests' LiveServer): its templates and static files load from the installed package,
and a team signs in and sees its own job, over plain HTTP on loopback with the Secure cookie."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uikit  # noqa: F401  (first: it puts tests/control on the path)
from live import LiveServer  # tests/control/live.py


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'cortex.db'}", slots=1)
    srv.home.mkdir()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.cleanup_runs()


def test_cortex_serve_serves_the_dashboard(served: LiveServer) -> None:
    token = served.team_token("fsd")
    api = served.client(token)
    r = api.post(
        "/v1/jobs",
        json={"name": "served-job", "gpus": 1, "duration_s": 60, "command": ["sleep", "30"]},
    )
    assert r.status_code == 201, r.text
    for path in ("/ui/static/vendor/htmx.min.js", "/ui/static/heatmap.js", "/ui/static/app.css"):
        assert httpx.get(served.base + path, timeout=30).status_code == 200, path
    with httpx.Client(base_url=served.base, timeout=30) as c:
        login = c.post("/ui/login", data={"token": token})
        assert login.status_code == 303
        # httpx, unlike a browser, sends a Secure cookie only over HTTPS: carry it by hand.
        cookie = login.cookies.get("cortex_ui_token")
        assert cookie == token
        page = c.get("/ui/jobs?state=all", headers={"Cookie": f"cortex_ui_token={cookie}"})
        assert page.status_code == 200
        assert "served-job" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
