"""Atomic checkpoints, retention, corruption fallback and RNG round trips (in process)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cortex.training import checkpoint as ck  # noqa: E402


def _state(step: int) -> dict:
    return {"step": step, "w": torch.full((3,), float(step))}


def test_save_keeps_the_newest_k_and_leaves_no_temp_files(tmp_path: Path) -> None:
    ck.prepare_dir(tmp_path)
    for step in (10, 20, 30, 40):
        ck.save(tmp_path, step, _state(step), keep=2)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [30, 40]
    assert not list(tmp_path.glob(".*tmp"))
    assert ck.load_latest(tmp_path)["step"] == 40


def test_corrupt_latest_falls_back_with_a_warning(tmp_path: Path, capsys) -> None:
    for step in (10, 20):
        ck.save(tmp_path, step, _state(step), keep=3)
    latest = ck.checkpoint_path(tmp_path, 20)
    data = bytearray(latest.read_bytes())
    data[-10] ^= 0xFF  # one flipped bit-group deep in the payload
    latest.write_bytes(bytes(data))
    state = ck.load_latest(tmp_path)
    assert state is not None and state["step"] == 10
    assert "checksum mismatch" in capsys.readouterr().err


def test_only_corrupt_checkpoints_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    ck.checkpoint_path(tmp_path, 5).write_bytes(b"garbage")
    with pytest.raises(ck.CheckpointError, match=r"no usable checkpoint.*bad header"):
        ck.load_latest(tmp_path)


def test_empty_directory_has_no_checkpoint(tmp_path: Path) -> None:
    assert ck.load_latest(tmp_path) is None


def test_prepare_dir_rejects_an_unwritable_path_and_clears_torn_writes(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ck.CheckpointError, match="not writable"):
        ck.prepare_dir(blocker / "sub")
    (tmp_path / ".ckpt-00000010-1.tmp").write_bytes(b"half")
    ck.prepare_dir(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))


def test_rng_states_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    ck.save(tmp_path, 1, {"step": 1, "rng": ck.rng_state()}, keep=1)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    ck.set_rng_state(ck.load_latest(tmp_path)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]
