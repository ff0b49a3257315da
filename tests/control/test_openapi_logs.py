"""The OpenAPI schema declares the bearer scheme (the probes excepted), the docs page loads
only assets the service serves itself (no CDN: it works offline), and `cortex serve`'s logs
come as text or as one JSON object a line."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service

from cortex.control import logfmt
from cortex.control.settings import Settings


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_schema_declares_the_bearer_scheme(db_url: str, tmp_path: Path) -> None:
    svc = fake_service(db_url, tmp_path)
    try:
        c = TestClient(svc.app)
        schema = c.get("/openapi.json").json()  # loopback: ops open
        assert schema["components"]["securitySchemes"]["bearer"] == {
            "type": "http",
            "scheme": "bearer",
            "description": "a team token (`cortex token create --team T`) or the admin token",
        }
        assert schema["security"] == [{"bearer": []}]
        assert schema["paths"]["/healthz"]["get"]["security"] == []
        assert "security" not in schema["paths"]["/v1/jobs"]["get"]  # the global one applies
        assert c.get("/healthz").status_code in (200, 503)  # no token needed, as declared
        assert c.get("/v1/jobs").status_code == 401  # a token needed, as declared
        ok = c.get("/v1/jobs", headers={"Authorization": f"Bearer {ADMIN}"})
        assert ok.status_code == 200
        # The docs page refers to nothing outside the service: it works air-gapped.
        page = c.get("/docs").text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
        assert urls and all(u.startswith("/") for u in urls), urls
        assert "cdn" not in page.lower()
        for u in urls:
            assert c.get(u).status_code == 200, u
    finally:
        svc.close()


def _record(msg: str, exc: bool = False) -> logging.LogRecord:
    err = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            err = sys.exc_info()
    return logging.LogRecord("cortex.control", logging.WARNING, __file__, 1, msg, (), err)


def test_json_logs_are_one_object_a_line() -> None:
    f = logfmt.JsonFormatter()
    line = f.format(_record('a "quoted"\nmessage'))
    assert "\n" not in line  # the newline is escaped inside the string
    got = json.loads(line)
    assert (got["level"], got["logger"], got["msg"]) == (
        "warning", "cortex.control", 'a "quoted"\nmessage',
    )  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got["ts"])
    with_exc = json.loads(f.format(_record("failed", exc=True)))
    assert "ValueError: boom" in with_exc["exc"]


def test_configure_routes_uvicorn_through_the_root_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logfmt.configure("debug", "json")
        logging.getLogger("uvicorn.error").info("listening")
        logging.getLogger("cortex.control").debug("tick")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        assert [(x["logger"], x["msg"]) for x in lines] == [
            ("uvicorn.error", "listening"),
            ("cortex.control", "tick"),
        ]
        logfmt.configure("warning", "text")
        logging.getLogger("cortex.control").info("hidden")
        logging.getLogger("cortex.control").warning("shown")
        err = capsys.readouterr().err
        assert "hidden" not in err and " WARNING cortex.control shown" in err
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_a_bad_log_format_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from cortex.errors import InputError

    monkeypatch.setenv("CORTEX_LOG_FORMAT", "xml")
    with pytest.raises(InputError) as got:
        Settings.from_env()
    assert str(got.value) == "CORTEX_LOG_FORMAT: value: Input should be 'text' or 'json'"
