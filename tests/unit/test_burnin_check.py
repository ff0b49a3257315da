"""The burn-in diagnostic (cortex/training/burnin.py): its known result, its verdict on a wrong
product, a GPU missing from CUDA's view, and its exit codes."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from cortex.training import burnin


def test_the_known_result_by_hand() -> None:
    a, b, want = burnin.operands(3)
    # a[i, k] = (i + k) % 7 - 3; b[k, j] = (k * j) % 5 - 2.
    assert a.tolist() == [[-3, -2, -1], [-2, -1, 0], [-1, 0, 1]]
    assert b.tolist() == [[-2, -2, -2], [-2, -1, 0], [-2, 0, 2]]
    # Row 0: (-3)(-2)+(-2)(-2)+(-1)(-2) = 12; (-3)(-2)+(-2)(-1)+(-1)(0) = 8;
    # (-3)(-2)+(-2)(0)+(-1)(2) = 4.
    assert want[0].tolist() == [12, 8, 4]


def test_float_products_of_the_operands_are_exact() -> None:
    """Why a float product can be compared exactly: every entry fits float32's 24 bits."""
    a, b, want = burnin.operands(burnin.GPU_N)
    assert np.abs(want).max() <= burnin.GPU_N * 3 * 2 < 2**24
    got = a.astype(np.float32) @ b.astype(np.float32)
    assert np.array_equal(got, want.astype(np.float32))


def test_check_finds_a_wrong_product() -> None:
    a, b, want = burnin.operands(8)
    calls = []

    def flaky() -> Any:
        calls.append(1)
        c = a @ b
        if len(calls) == 3:
            c[5, 2] += 1  # one bad entry on the third product
        return c

    rounds, fault = burnin.check(flaky, lambda c: bool(np.array_equal(c, want)), 10.0)
    assert (rounds, fault) == (3, "product 3 differs from the known result")


def test_check_passes_right_products_at_least_min_rounds() -> None:
    a, b, want = burnin.operands(8)
    rounds, fault = burnin.check(lambda: a @ b, lambda c: bool(np.array_equal(c, want)), 0.0, 4)
    assert (rounds, fault) == (4, None)


def test_a_gpu_missing_from_cudas_view_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    torch = SimpleNamespace(cuda=SimpleNamespace(device_count=lambda: 1))
    assert burnin.on_gpus(torch, 1.0) == "CUDA sees 1 GPUs of the 2 given (0,1)"


def test_a_cpu_job_never_uses_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # what the executor gives a CPU job
    assert burnin._torch_with_gpus() == (None, None)


def test_gpus_given_but_cuda_sees_none_fails_not_the_cpu_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A node whose driver is gone: the GPUs are named, torch imports, CUDA sees nothing. The
    # CPU check would pass it; the burn-in must fail it.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    fake = SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setattr(burnin, "on_cpu", lambda s: pytest.fail("the CPU check ran"))
    assert burnin.main(["--seconds", "0.01"]) == burnin.EXIT_FAULT
    assert capsys.readouterr().err == "burn-in failed: CUDA sees 0 GPUs of the 2 given (2,3)\n"


def test_gpus_given_without_torch_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert burnin._torch_with_gpus() == (
        None,
        "GPUs 0 given, but torch is not installed to check them",
    )


def test_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert burnin.main(["--seconds", "0.01"]) == 0
    assert capsys.readouterr().out.endswith("burn-in passed\n")
    monkeypatch.setattr(burnin, "on_cpu", lambda s: "cpu: product 2 differs from the known result")
    assert burnin.main(["--seconds", "0.01"]) == burnin.EXIT_FAULT
    err = capsys.readouterr().err
    assert err == "burn-in failed: cpu: product 2 differs from the known result\n"
    assert burnin.main(["--seconds", "0"]) == burnin.EXIT_BAD_INPUT
