"""The job's checkpoint interval in time (CORTEX_CHECKPOINT_INTERVAL_S, or
--checkpoint-interval-s), and the protocol fields the control plane reads as progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortex.jobproto import ENV_ATTEMPT, ENV_CHECKPOINT_INTERVAL_S, EXIT_OK
from cortex.training.cli import main

from .trainkit import metrics, run

ARGS = ("--config", "tiny", "--steps", "6", "--log-every", "3", "--num-workers", "0")


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--checkpoint-interval-s", "0"], {}, "error: --checkpoint-interval-s: must be"),
        (["--checkpoint-interval-s", "nan"], {}, "error: --checkpoint-interval-s: must be"),
        ([], {ENV_CHECKPOINT_INTERVAL_S: "soon"}, f"error: {ENV_CHECKPOINT_INTERVAL_S}: must be"),
        ([], {ENV_CHECKPOINT_INTERVAL_S: "-5"}, f"error: {ENV_CHECKPOINT_INTERVAL_S}: must be"),
        ([], {ENV_CHECKPOINT_INTERVAL_S: "inf"}, f"error: {ENV_CHECKPOINT_INTERVAL_S}: must be"),
    ],
)
def test_a_bad_interval_is_one_line_naming_its_source(
    argv: list[str], env: dict[str, str], expected: str, capsys, monkeypatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main("optimus", ["--config", "tiny", "--steps", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(expected), err


def test_the_interval_checkpoints_in_time_whatever_the_step_count(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ckpt, m = tmp_path / "ckpt", tmp_path / "m.jsonl"
    # --checkpoint-every 1000: never by steps in a 6-step run. An interval of 1 ms is over
    # after every step (a step of even the tiny model takes longer), so each of steps 1..5
    # checkpoints, and step 6 is the final checkpoint every run writes.
    out = run(
        "fsd",
        *ARGS,
        "--checkpoint-every",
        "1000",
        "--keep-checkpoints",
        "10",
        "--checkpoint-dir",
        str(ckpt),
        "--metrics-file",
        str(m),
        **{ENV_CHECKPOINT_INTERVAL_S: "0.001", ENV_ATTEMPT: "3"},
    )
    assert out.returncode == EXIT_OK, out.stderr
    lines = metrics(m)
    saved = [d["step"] for d in lines if d.get("event") == "checkpoint"]
    assert saved == [1, 2, 3, 4, 5, 6]
    assert {d["attempt"] for d in lines} == {3}
    # What `cortex logs` shows: one line per logged step (steps 3 and 6).
    printed = [x for x in out.stdout.splitlines() if x.startswith("step ")]
    assert [x.split()[1] for x in printed] == ["3/6", "6/6"]


def test_without_an_interval_only_steps_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    m = tmp_path / "m.jsonl"
    out = run(
        "fsd",
        *ARGS,
        "--checkpoint-every",
        "4",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--metrics-file",
        str(m),
    )
    assert out.returncode == EXIT_OK, out.stderr
    # Step 4 by count, step 6 at the end.
    assert [d["step"] for d in metrics(m) if d.get("event") == "checkpoint"] == [4, 6]
    assert {d["attempt"] for d in metrics(m)} == {None}
