"""`python -m cortex` is the `cortex` command (for a venv whose scripts are not on PATH)."""

from __future__ import annotations

import subprocess
import sys


def _cortex(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cortex", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_python_dash_m_cortex_runs_the_command_line() -> None:
    out = _cortex("--help")
    assert out.returncode == 0, out.stderr
    assert "sim" in out.stdout and "plan" in out.stdout


def test_python_dash_m_cortex_exits_2_on_bad_input_like_the_command() -> None:
    out = _cortex("sim", "--fleet", "no-such-fleet", "--days", "1")
    assert out.returncode == 2 and out.stderr.startswith("error:"), out.stderr
    assert "Traceback" not in out.stderr
