"""Bad input ends in one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortex.training.cli import main

from .trainkit import run


def _case_checkpoint_dir_under_a_file(tmp: Path) -> list[str]:
    (tmp / "file").write_text("x")
    return ["--checkpoint-dir", str(tmp / "file" / "ck")]


def _case_only_a_corrupt_checkpoint(tmp: Path) -> list[str]:
    (tmp / "ck").mkdir()
    (tmp / "ck" / "ckpt-00000010.pt").write_bytes(b"not a checkpoint")
    return ["--checkpoint-dir", str(tmp / "ck")]


def _case_metrics_file_under_a_file(tmp: Path) -> list[str]:
    (tmp / "file").write_text("x")
    return ["--metrics-file", str(tmp / "file" / "m.jsonl")]


NO_TORCH_CASES = [
    (["--config", "huge"], "error: --config huge: unknown config (known: tiny, small, large)"),
    (["--batch-size", "-4"], "error: --batch-size: Input should be greater than 0"),
    (["--steps", "0"], "error: --steps: Input should be greater than 0"),
    (["--batch-size", "four"], "error: argument --batch-size: invalid int value: 'four'"),
    (["--frobnicate"], "error: unrecognized arguments: --frobnicate"),
    (_case_metrics_file_under_a_file, "error: metrics file "),
]
TORCH_CASES = [
    (_case_checkpoint_dir_under_a_file, "not writable: Not a directory"),
    (_case_only_a_corrupt_checkpoint, "no usable checkpoint in "),
]


def _check(workload: str, args, expected: str, tmp_path: Path) -> None:
    argv = args(tmp_path) if callable(args) else args
    # later flags win in argparse, so a case may replace --config
    out = run(workload, "--config", "tiny", "--steps", "2", *argv)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr
    assert lines[-1].startswith("error: "), lines
    assert expected in lines[-1], lines[-1]
    # the only other lines allowed are the warnings that explain a fallback
    assert all(line.startswith("warning: ") for line in lines[:-1]), lines


@pytest.mark.parametrize(("args", "expected"), NO_TORCH_CASES)
def test_bad_arguments(args, expected: str, tmp_path: Path, capsys) -> None:
    # In process: these fail before anything is imported that a subprocess would isolate,
    # and a process start per case costs seconds on the shared cores.
    argv = args(tmp_path) if callable(args) else args
    try:
        code = main("optimus", ["--config", "tiny", "--steps", "2", *argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err


def test_bad_arguments_in_a_real_process_end_in_one_line(tmp_path: Path) -> None:
    _check("optimus", ["--batch-size", "-4"], "error: --batch-size: Input should be", tmp_path)


@pytest.mark.parametrize(("args", "expected"), TORCH_CASES)
def test_bad_checkpoint_directories(args, expected: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    _check("fsd", args, expected, tmp_path)


def test_a_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ck = tmp_path / "ck"
    assert (
        run("optimus", "--config", "tiny", "--steps", "1", "--checkpoint-dir", str(ck)).returncode
        == 0
    )
    out = run("fsd", "--config", "tiny", "--steps", "2", "--checkpoint-dir", str(ck))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "different workload or model config (workload 'optimus')" in out.stderr
