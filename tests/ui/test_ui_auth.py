"""The dashboard's login: the team token in an HttpOnly, SameSite=Strict, Secure cookie,
checked by the API's own auth; a bad, expired or revoked token leads to the login page (never a
stack trace); state changes refuse other origins."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from uikit import ADMIN, UiEnv

from cortex.control import store
from cortex.control.ui.session import COOKIE


def _cookie_header(r: object) -> str:
    got = [v for k, v in r.headers.multi_items() if k.lower() == "set-cookie"]  # type: ignore[attr-defined]
    assert len(got) == 1, got
    return str(got[0])


def test_login_sets_an_httponly_strict_secure_cookie_for_the_ui_only(ui_env: UiEnv) -> None:
    c = TestClient(ui_env.svc.app, base_url="https://testserver")
    r = c.post("/ui/login", data={"token": ui_env.fsd}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = _cookie_header(r).lower()
    assert cookie.startswith(f"{COOKIE}=")
    for attr in ("httponly", "samesite=strict", "secure", "path=/ui"):
        assert attr in cookie, (attr, cookie)
    page = c.get("/ui/")
    assert page.status_code == 200
    assert "team fsd" in page.text


def test_the_secure_flag_can_be_turned_off_for_plain_http(tmp_path: Path) -> None:
    from uikit import fleet, make_service

    svc, _ = make_service(
        f"sqlite:///{tmp_path / 'c.db'}", tmp_path, fleet(), ui_cookie_secure=False
    )
    try:
        c = TestClient(svc.app)
        r = c.post("/ui/login", data={"token": ADMIN}, follow_redirects=False)
        assert r.status_code == 303
        assert "secure" not in _cookie_header(r).lower()
    finally:
        svc.close()


@pytest.mark.parametrize(
    "token",
    [
        "ctx_not-a-real-token",
        "",
        "x" * 5000,  # over the longest token the settings accept
        "ctx_\x00nul",
        "two words",
    ],
)
def test_a_wrong_token_shows_the_login_page_with_a_message(ui_env: UiEnv, token: str) -> None:
    c = TestClient(ui_env.svc.app, base_url="https://testserver")
    r = c.post("/ui/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 401
    assert 'id="login-error"' in r.text and "token:" in r.text
    assert "Traceback" not in r.text
    assert "set-cookie" not in r.headers


def test_an_expired_token_goes_to_the_login_page_and_its_cookie_is_cleared(
    tmp_path: Path,
) -> None:
    """On a fake clock: a token that expired in real time (0.5 s) could lapse before the login
    on a loaded machine, and fail the test by chance."""
    from fakeclock import FakeClock  # tests/control's, on the path uikit set

    clock = FakeClock()
    ui_env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        now = clock.time()
        with ui_env.svc.sessions.begin() as s:
            short, _ = store.create_token(s, "fsd", at=now, expires_at=now + 0.5)
        c = ui_env.login(short)
        assert c.get("/ui/").status_code == 200
        clock.advance(0.6)
        ui_env.svc.token_cache.clear()
        r = c.get("/ui/jobs", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/login?why=expired"
        assert f'{COOKIE}=""' in _cookie_header(r) or "max-age=0" in _cookie_header(r).lower()
        login = c.get("/ui/login?why=expired")
        assert "Your session ended" in login.text
        # htmx fragments are told where to go (a login form swapped into a table cell would not
        # do); the heatmap's binary snapshot and the event stream answer 401.
        c.cookies.set(COOKIE, short, domain="testserver.local", path="/ui")
        frag = c.get("/ui/fragments/overview", headers={"HX-Request": "true"})
        assert frag.status_code == 200 and frag.headers["hx-redirect"] == "/ui/login"
        assert c.get("/ui/heatmap.bin").status_code == 401
        assert c.get("/ui/incidents/stream").status_code == 401
    finally:
        ui_env.svc.close()


def test_a_revoked_token_stops_working_on_the_next_request(ui_env: UiEnv) -> None:
    c = ui_env.login(ui_env.fsd)
    assert c.get("/ui/fragments/overview").status_code == 200
    tokens = ui_env.client.get("/v1/tokens", headers=ui_env.api(ADMIN)).json()
    fsd_id = next(t["id"] for t in tokens if t["team"] == "fsd")
    r = ui_env.client.delete(f"/v1/tokens/{fsd_id}", headers=ui_env.api(ADMIN))
    assert r.status_code == 200, r.text
    r = c.get("/ui/fragments/overview", follow_redirects=False)
    assert r.status_code == 303


def test_state_changes_from_another_origin_are_refused(ui_env: UiEnv) -> None:
    jid = ui_env.submit(ui_env.fsd, gpus=64, name="big")
    c = ui_env.login(ui_env.fsd)
    evil = {"Origin": "https://evil.example"}
    assert c.post(f"/ui/jobs/{jid}/cancel", headers=evil).status_code == 403
    assert (
        c.post(f"/ui/jobs/{jid}/cancel", headers={"Sec-Fetch-Site": "cross-site"}).status_code
        == 403
    )
    fresh = TestClient(ui_env.svc.app, base_url="https://testserver")
    r = fresh.post("/ui/login", data={"token": ui_env.fsd}, headers=evil, follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    job = ui_env.client.get(f"/v1/jobs/{jid}", headers=ui_env.api(ADMIN)).json()
    assert job["cancel_requested"] is False
    same = {"Origin": "https://testserver", "Sec-Fetch-Site": "same-origin"}
    assert c.post(f"/ui/jobs/{jid}/cancel", headers=same).status_code == 200
    job = ui_env.client.get(f"/v1/jobs/{jid}", headers=ui_env.api(ADMIN)).json()
    assert job["cancel_requested"] is True


def test_logout_clears_the_cookie(ui_env: UiEnv) -> None:
    c = ui_env.login(ui_env.fsd)
    r = c.post("/ui/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?why=out"
    assert c.get("/ui/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "body",
    [
        b"a=1&b=2&c=3&d=4&e=5&token=x",  # more fields than the form has
        b"token=%ff%fe",  # not UTF-8
        b"\x00\x01\x02",
        b"token=" + b"A" * 10_000,  # past the part of the body that is read
    ],
)
def test_a_malformed_login_body_is_the_login_page_not_a_500(ui_env: UiEnv, body: bytes) -> None:
    c = TestClient(ui_env.svc.app, base_url="https://testserver")
    r = c.post(
        "/ui/login",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 401, r.text[:300]
    assert 'id="login-error"' in r.text


def test_an_open_event_stream_ends_once_its_token_is_revoked(
    ui_env: UiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream re-checks the token every RECHECK_EVERY polls: revoked, it ends (well before
    its lifetime, made long here so that only the re-check can end it)."""
    import httpx
    from uikit import LiveUi

    from cortex.control.ui import stream

    monkeypatch.setattr(stream, "POLL_S", 0.05)
    monkeypatch.setattr(stream, "STREAM_MAX_S", 600.0)
    live = LiveUi(ui_env)
    try:
        tokens = ui_env.client.get("/v1/tokens", headers=ui_env.api(ADMIN)).json()
        fsd_id = next(t["id"] for t in tokens if t["team"] == "fsd")
        headers = {"Cookie": f"{COOKIE}={ui_env.fsd}"}
        with (
            httpx.Client(base_url=live.base, timeout=60) as c,
            c.stream("GET", "/ui/incidents/stream", headers=headers) as r,
        ):
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith("retry:")
            revoked = ui_env.client.delete(f"/v1/tokens/{fsd_id}", headers=ui_env.api(ADMIN))
            assert revoked.status_code == 200
            ui_env.svc.token_cache.clear()
            rest = list(lines)  # returns only when the server ends the stream
        assert all(not x.startswith("event:") for x in rest)
    finally:
        live.stop()
