"""The month bench's bytecode knob and trees: a bad value exits naming the variable before any
timed run (bench/run.py, bench_month)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _month(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bench/run.py", "--only", "month"],
        check=False,
        cwd=REPO,
        env={**os.environ, "BENCH_DAYS": "0.001", "BENCH_REPEATS": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unknown_bytecode_mode_exits_naming_the_variable() -> None:
    r = _month({"BENCH_BYTECODE": "sometimes"})
    assert r.returncode != 0
    assert "BENCH_BYTECODE: 'sometimes' is neither 'cached' nor 'env'" in r.stderr


def test_a_base_tree_that_is_not_a_directory_exits_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-src"
    r = _month({"BENCH_BASE_SRC": str(missing)})
    assert r.returncode != 0
    assert f"PYTHONPATH/BENCH_BASE_SRC: {missing} is not a directory" in r.stderr
