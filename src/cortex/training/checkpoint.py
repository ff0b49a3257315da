"""Atomic, checksummed checkpoints: keep the last K, fall back past corrupt ones.

File layout: MAGIC (8 bytes) + SHA-256 of the payload (32 bytes) + payload (`torch.save` bytes).
The checksum catches torn or bit-rotted files that `torch.load` might otherwise half-read.
Writes go to a temp file in the same directory, are fsynced, renamed over the final name and the
directory is fsynced, so a crash leaves either the old set of checkpoints or the new one.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAGIC = b"CTXCKPT1"
_NAME = re.compile(r"^ckpt-(\d{8,})\.pt$")
# Test hook, "STEP:PATH": while writing the checkpoint of STEP, the writer stops halfway through
# the payload, creates PATH and sleeps, so that a test can SIGKILL it mid-write deterministically.
ENV_PAUSE_MID_WRITE = "CORTEX_TEST_PAUSE_MID_WRITE"


class CheckpointError(Exception):
    """A checkpoint directory or file that cannot be used; the message is one line."""


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"ckpt-{step:08d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every finished checkpoint, oldest first."""
    found = []
    for p in directory.iterdir():
        match = _NAME.match(p.name)
        if match:
            found.append((int(match.group(1)), p))
    return sorted(found)


def prepare_dir(directory: Path, clean: bool = True) -> None:
    """Create the directory, prove it is writable, and (with `clean`) remove the temp files of
    torn writes."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CheckpointError(
            f"checkpoint directory {directory}: not writable: {err.strerror or err}"
        ) from None
    if clean:
        for tmp in directory.glob(".ckpt-*.tmp"):
            tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(directory: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write `state` as the checkpoint of `step` atomically; keep only the newest `keep`."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    final = checkpoint_path(directory, step)
    tmp = directory / f".ckpt-{step:08d}-{os.getpid()}.tmp"
    pause_step, _, pause = os.environ.get(ENV_PAUSE_MID_WRITE, "").partition(":")
    with open(tmp, "wb") as f:
        f.write(MAGIC + hashlib.sha256(payload).digest())
        if pause and int(pause_step) == step:
            half = len(payload) // 2
            f.write(payload[:half])
            f.flush()
            os.fsync(f.fileno())
            Path(pause).write_text(str(step))
            time.sleep(3600)
            f.write(payload[half:])
        else:
            f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(directory)
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def read(path: Path) -> dict[str, Any]:
    """Load and verify one checkpoint; CheckpointError names the file and what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(data) < 40 or data[:8] != MAGIC:
        raise CheckpointError(f"{path}: not a Cortex checkpoint (bad header)")
    payload = data[40:]
    if hashlib.sha256(payload).digest() != data[8:40]:
        raise CheckpointError(f"{path}: checksum mismatch (truncated or corrupt)")
    try:
        # weights_only: a checkpoint directory is input, and unpickling input runs code.
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad payloads; all mean "corrupt"
        raise CheckpointError(f"{path}: cannot be loaded: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path}: missing training state")
    return state


def load_latest(directory: Path) -> dict[str, Any] | None:
    """The newest readable checkpoint, warning about each newer one that is corrupt.

    None when the directory holds no checkpoint; CheckpointError when it holds only corrupt
    ones (starting over silently would throw away the job's progress)."""
    found = list_checkpoints(directory)
    errors = []
    for _, path in reversed(found):
        try:
            return read(path)
        except CheckpointError as err:
            errors.append(str(err))
            print(f"warning: {err}; trying the previous checkpoint", file=sys.stderr, flush=True)
    if errors:
        raise CheckpointError(f"no usable checkpoint in {directory}: {errors[0]}")
    return None


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
