"""DDP over gloo with two real processes on loopback, launched with torchrun's variables."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cortex.jobproto import EXIT_PREEMPTED  # noqa: E402
from cortex.training import checkpoint as ck  # noqa: E402
from cortex.training.testhooks import ENV_DUMP_PARAMS, ENV_PAUSE_AT_STEP  # noqa: E402

from .trainkit import free_port, metrics, start, wait_for  # noqa: E402


def test_two_ranks_end_with_identical_parameters(tmp_path: Path) -> None:
    workload = "fsd"
    port = str(free_port())
    dump = tmp_path / "params"
    procs = [
        start(
            workload,
            "--config",
            "tiny",
            "--steps",
            "10",
            "--log-every",
            "5",
            "--checkpoint-every",
            "5",
            "--num-workers",
            "0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            WORLD_SIZE="2",
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            CORTEX_CHECKPOINT_DIR=str(tmp_path / "ck"),
            CORTEX_METRICS_FILE=str(tmp_path / "m.jsonl"),
            **{ENV_DUMP_PARAMS: str(dump)},
        )
        for rank in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    # training moved the weights (identical but untrained would prove nothing)
    init = ck.read(ck.checkpoint_path(tmp_path / "ck", 5))["model"]
    assert any(not torch.equal(init[k], r0[k]) for k in r0)
    steps = [d for d in metrics(tmp_path / "m.jsonl") if "loss" in d]
    assert [d["world_size"] for d in steps] == [2, 2]
    assert steps[-1]["samples_seen"] == 10 * 2 * 8  # steps x ranks x per-rank batch


def test_sigterm_to_one_rank_stops_both_at_the_same_step(tmp_path: Path) -> None:
    """Ranks receive SIGTERM at different moments; here only rank 0 gets it, paused after step 5
    while rank 1 waits for it in the next collective. Both must stop at step 5 and exit 75,
    or the rank still training would hang."""
    port = str(free_port())
    marker = tmp_path / "paused"
    procs = []
    for rank in (0, 1):
        hook = {ENV_PAUSE_AT_STEP: f"5:{marker}"} if rank == 0 else {}
        procs.append(
            start(
                "optimus", "--config", "tiny", "--steps", "20", "--num-workers", "0",
                MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2", RANK=str(rank),
                LOCAL_RANK=str(rank), CORTEX_CHECKPOINT_DIR=str(tmp_path / "ck"),
                CORTEX_METRICS_FILE=str(tmp_path / "m.jsonl"), **hook,
            )
        )  # fmt: skip
    wait_for(marker, procs[0])
    procs[0].send_signal(signal.SIGTERM)
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == EXIT_PREEMPTED, err
    assert [s for s, _ in ck.list_checkpoints(tmp_path / "ck")] == [5]
    events = [(d["event"], d["step"]) for d in metrics(tmp_path / "m.jsonl") if "event" in d]
    assert events[-1] == ("preempted", 5)
