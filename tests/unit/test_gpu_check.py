"""bench/gpu_check.py's verdicts: a check must not say `ok` when what it checks failed. Its
first H200 run kept in bench/gpu/2026-12-04-h200/gpu_check.json says `fsd: ok` beside
`deterministic_rc: 1` and a traceback, and `attention: ok` whatever the probe found."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
REFUSAL = (
    "error: --deterministic: grid_sampler_2d_backward_cuda has no deterministic implementation "
    "on cuda; run with --no-deterministic"
)
TRACEBACK = "Traceback (most recent call last):\n  ...\nRuntimeError: grid_sampler_2d_backward_cuda"


@pytest.fixture(scope="module")
def gc() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("rc", "stderr", "ok"),
    [
        (0, "", True),  # deterministic kernels everywhere: it ran
        (2, f"fsd --config small: ...\n{REFUSAL}\n", True),  # refused in one line
        (1, TRACEBACK, False),  # a traceback: the refusal path did not hold
        (2, "error: --config small: unknown config\n", False),  # refused for another reason
        (-9, "timed out after 60 s", False),
    ],
)
def test_fsd_check_fails_when_the_deterministic_run_does(
    gc: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rc: int, stderr: str, ok: bool
) -> None:
    resumed = {"rc_interrupted": 75, "rc_resumed": 0, "events": [("resume", 13)]}
    monkeypatch.setattr(gc, "_interrupted", lambda *_a, **_k: dict(resumed))
    monkeypatch.setattr(gc, "_train", lambda *_a, **_k: (rc, stderr))
    assert gc.check_fsd(tmp_path, "cuda")["ok"] is ok


def test_fsd_check_fails_when_the_run_did_not_resume_at_the_pause(
    gc: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # no marker within the deadline: _interrupted sends SIGTERM anyway, and the run stops with
    # 75 wherever it was; the check is of a stop after step 13 and a resume from it
    stopped = {"rc_interrupted": 75, "rc_resumed": 0, "events": [("resume", 8)]}
    monkeypatch.setattr(gc, "_interrupted", lambda *_a, **_k: dict(stopped))
    monkeypatch.setattr(gc, "_train", lambda *_a, **_k: (0, ""))
    assert gc.check_fsd(tmp_path, "cuda")["ok"] is False


def _probe(gc: Any, monkeypatch: pytest.MonkeyPatch, found: dict[str, str]) -> dict[str, Any]:
    def run(*_a: object, **_k: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 0, stdout=json.dumps(found) + "\n", stderr="")

    monkeypatch.setattr(gc.subprocess, "run", run)
    result: dict[str, Any] = gc.check_attention("cuda")
    return result


def test_attention_check_fails_when_a_shape_the_model_runs_fails(
    gc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = json.loads((SCRIPT.parent / "gpu" / "2026-12-04-h200" / "gpu_check.json").read_text())
    found = {k: v for k, v in kept["attention"].items() if "/" in k}
    # the kept H200 run: the whole temporal call fails, the chunks the model now runs do not
    assert found["temporal/default"] != "ok"
    assert _probe(gc, monkeypatch, found)["ok"] is True
    for shape in ("temporal_chunked/default", "lift/default"):
        broken = dict(found, **{shape: "RuntimeError: CUDA error: invalid argument"})
        assert _probe(gc, monkeypatch, broken)["ok"] is False, shape


class _Stuck:
    """A training run that ignores SIGTERM: its first wait times out, SIGKILL ends it."""

    pid = 4242
    returncode: int | None = None

    def __init__(self, *_a: object, **_k: object) -> None:
        self.waits = 0

    def poll(self) -> int | None:
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.waits += 1
        if self.waits == 1:
            raise subprocess.TimeoutExpired("train", timeout or 0)
        self.returncode = -9
        return "", "killed"


def test_a_run_that_ignores_sigterm_is_killed_not_left_on_the_device(
    gc: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # it would hold the GPU through every later check; the check reports it and goes on
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(gc.subprocess, "Popen", _Stuck)
    monkeypatch.setattr(gc.os, "killpg", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(gc, "_train", lambda *_a, **_k: (0, ""))
    (tmp_path / "job-at").write_text("13")  # the pause was reached
    res = gc._interrupted("fsd", (), tmp_path / "job", 13)
    assert [sig for _, sig in sent] == [gc.signal.SIGTERM, gc.signal.SIGKILL]
    assert res["rc_interrupted"] == -9
