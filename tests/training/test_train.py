"""Real training runs as subprocesses: learning, SIGTERM and resume, SIGKILL mid-checkpoint."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cortex.jobproto import EXIT_OK, EXIT_PREEMPTED  # noqa: E402
from cortex.training import checkpoint as ck  # noqa: E402
from cortex.training.checkpoint import ENV_PAUSE_MID_WRITE  # noqa: E402
from cortex.training.testhooks import ENV_PAUSE_AT_STEP  # noqa: E402

from .trainkit import metrics, run, start, wait_for  # noqa: E402

WORKLOADS = ["fsd", "optimus"]


@pytest.mark.parametrize("workload", WORKLOADS)
def test_tiny_config_learns_well_below_the_constant_baseline(workload: str, tmp_path: Path) -> None:
    out = run(workload, "--config", "tiny", "--metrics-file", str(tmp_path / "m.jsonl"))
    assert out.returncode == EXIT_OK, out.stderr
    lines = metrics(tmp_path / "m.jsonl")
    steps = [d for d in lines if "loss" in d]
    assert steps[-1]["step"] == 100
    for d in steps:
        assert {"step", "loss", "samples_per_s", "gpu_power_w", "baseline_loss"} <= d.keys()
        assert d["gpu_power_w"] is None  # no NVML here
        assert d["samples_per_s"] > 0
    last = steps[-3:]  # the last 30 steps
    loss = sum(d["loss"] for d in last) / len(last)
    baseline = sum(d["baseline_loss"] for d in last) / len(last)
    assert loss < 0.6 * baseline, (loss, baseline)
    first = steps[0]["loss"]
    assert loss < 0.5 * first
    assert [d["event"] for d in lines if "event" in d] == ["start", "done"]


def _params(directory: Path, step: int) -> dict:
    state = ck.read(ck.checkpoint_path(directory, step))
    return {"model": state["model"], "optimizer": state["optimizer"]["state"]}


def _assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for idx, sa in a["optimizer"].items():
        for k, v in sa.items():
            assert torch.equal(v, b["optimizer"][idx][k]), (idx, k)


COMMON = ("--config", "tiny", "--steps", "24", "--checkpoint-every", "8", "--log-every", "4")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """Uninterrupted runs to step 24 (checkpoints 8, 16, 24), shared by the tests below: each
    torch process start costs seconds on the shared CI cores."""
    made: dict[str, Path] = {}

    def get(workload: str) -> Path:
        if workload not in made:
            d = tmp_path_factory.mktemp(f"ref-{workload}")
            out = run(workload, *COMMON, "--num-workers", "0", "--checkpoint-dir", str(d))
            assert out.returncode == EXIT_OK, out.stderr
            made[workload] = d
        return made[workload]

    return get


def test_sigterm_then_resume_matches_an_uninterrupted_run_bitwise(
    reference, tmp_path: Path
) -> None:
    # optimus: its dropout draws from the torch RNG, so this also proves the RNG state resumes.
    workload = "optimus"
    # Interrupted at step 13, between checkpoints (8 and 16), with a DataLoader worker this time.
    job = tmp_path / "job"
    marker = tmp_path / "at-step"
    mfile = tmp_path / "m.jsonl"
    proc = start(
        workload,
        *COMMON,
        "--num-workers",
        "1",
        CORTEX_CHECKPOINT_DIR=str(job),
        CORTEX_METRICS_FILE=str(mfile),
        **{ENV_PAUSE_AT_STEP: f"13:{marker}"},
    )
    wait_for(marker, proc)
    # to the whole process group, DataLoader worker included, as an executor may do
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED, err
    assert [s for s, _ in ck.list_checkpoints(job)] == [8, 13]
    assert "SIGTERM received" in err

    out = run(
        workload,
        *COMMON,
        "--num-workers",
        "1",
        CORTEX_CHECKPOINT_DIR=str(job),
        CORTEX_METRICS_FILE=str(mfile),
    )
    assert out.returncode == EXIT_OK, out.stderr
    events = [(d["event"], d["step"]) for d in metrics(mfile) if "event" in d]
    assert ("preempted", 13) in events and ("resume", 13) in events
    logged = [d["step"] for d in metrics(mfile) if "loss" in d]
    assert logged == [4, 8, 12, 16, 20, 24]  # step 13's window is cut short, then resumed
    _assert_bitwise_equal(_params(reference(workload), 24), _params(job, 24))


def test_sigkill_during_a_checkpoint_write_resumes_from_the_previous_one(
    reference, tmp_path: Path
) -> None:
    job = tmp_path / "job"
    marker = tmp_path / "mid-write"
    proc = start(
        "fsd",
        *COMMON,
        "--num-workers",
        "0",
        "--checkpoint-dir",
        str(job),
        **{ENV_PAUSE_MID_WRITE: f"16:{marker}"},
    )
    wait_for(marker, proc)
    proc.kill()  # SIGKILL: no handler runs, the temp file stays half written
    proc.communicate(timeout=30)
    assert [s for s, _ in ck.list_checkpoints(job)] == [8]
    assert list(job.glob(".ckpt-00000016-*.tmp"))

    mfile = tmp_path / "m.jsonl"
    out = run(
        "fsd",
        *COMMON,
        "--num-workers",
        "0",
        "--checkpoint-dir",
        str(job),
        "--metrics-file",
        str(mfile),
    )
    assert out.returncode == EXIT_OK, out.stderr
    assert ("resume", 8) in [(d.get("event"), d["step"]) for d in metrics(mfile)]
    assert not list(job.glob("*.tmp"))
    _assert_bitwise_equal(_params(reference("fsd"), 24), _params(job, 24))


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_with_a_warning(
    reference, tmp_path: Path
) -> None:
    job = tmp_path / "job"
    shutil.copytree(reference("fsd"), job)
    latest = ck.checkpoint_path(job, 24)
    latest.write_bytes(latest.read_bytes()[:1000])  # torn
    mfile = tmp_path / "m.jsonl"
    out = run(
        "fsd",
        *COMMON,
        "--num-workers",
        "0",
        "--checkpoint-dir",
        str(job),
        "--metrics-file",
        str(mfile),
    )
    assert out.returncode == EXIT_OK, out.stderr
    assert "warning:" in out.stderr and "ckpt-00000024.pt: checksum mismatch" in out.stderr
    events = [(d.get("event"), d["step"]) for d in metrics(mfile) if "event" in d]
    assert events[0] == ("resume", 16)
    # the redone steps 17..24 reproduce the lost checkpoint exactly
    _assert_bitwise_equal(_params(reference("fsd"), 24), _params(job, 24))
