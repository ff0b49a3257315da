"""A node's burn-in diagnostic: `python -m cortex.training.burnin [--seconds S]`.

The control plane runs it as a job pinned to a node back from a drain (control/loop_burnin.py)
and returns the node to service only if it exits 0 in time. It multiplies two matrices of small
integers again and again for about `--seconds` and compares every product, exactly, with the
product computed once in integer arithmetic: each entry is a sum of at most n products of
magnitude at most 3 x 2, so float32 and float64 hold it exactly and any difference is a fault
(a bad GPU, bad memory, a flipped bit), not rounding. With torch and visible GPUs, every GPU
the job was given runs it in float32 (TF32 off, which would round); it also fails when CUDA
sees fewer GPUs than CUDA_VISIBLE_DEVICES names (one fell off the bus), when it sees none of
them, or when torch is missing to check them. A CPU job (no GPUs given) is checked by numpy
in float64 on the CPU.

Exit 0: passed; 1: a fault, named on stderr's last line; 2: bad arguments."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

EXIT_FAULT = 1
EXIT_BAD_INPUT = 2
CPU_N = 256  # matrix sides: a product takes a few ms on a CPU core, ~0.1 ms on a GPU
GPU_N = 2048


def operands(n: int) -> tuple[Any, Any, Any]:
    """(a, b, a @ b) as numpy arrays: a[i, k] = (i + k) % 7 - 3, b[k, j] = (k * j) % 5 - 2, the
    product in int64 (exact)."""
    import numpy as np

    i = np.arange(n, dtype=np.int64)
    a = (i[:, None] + i[None, :]) % 7 - 3
    b = (i[:, None] * i[None, :]) % 5 - 2
    return a, b, a @ b


def check(
    matmul: Callable[[], Any], same: Callable[[Any], bool], seconds: float, min_rounds: int = 3
) -> tuple[int, str | None]:
    """Run `matmul` until `seconds` have passed (at least `min_rounds` times); `same(c)` says
    whether a product is the known one. Returns (rounds, the first fault or None)."""
    rounds = 0
    deadline = time.monotonic() + seconds
    while rounds < min_rounds or time.monotonic() < deadline:
        c = matmul()
        rounds += 1
        if not same(c):
            return rounds, f"product {rounds} differs from the known result"
    return rounds, None


def on_cpu(seconds: float) -> str | None:
    import numpy as np

    a, b, want = operands(CPU_N)
    fa, fb, fwant = a.astype(np.float64), b.astype(np.float64), want.astype(np.float64)
    rounds, fault = check(lambda: fa @ fb, lambda c: bool(np.array_equal(c, fwant)), seconds)
    print(f"cpu: {rounds} products of {CPU_N}x{CPU_N} in float64", flush=True)
    return None if fault is None else f"cpu: {fault}"


def on_gpus(torch: Any, seconds: float) -> str | None:
    visible = _visible_gpus()
    count = torch.cuda.device_count()
    if visible and count != len(visible):
        return f"CUDA sees {count} GPUs of the {len(visible)} given ({','.join(visible)})"
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b, want = operands(GPU_N)
    for d in range(count):
        dev = torch.device("cuda", d)
        ta = torch.from_numpy(a).to(dev, torch.float32)
        tb = torch.from_numpy(b).to(dev, torch.float32)
        twant = torch.from_numpy(want).to(dev, torch.float32)
        t0 = time.monotonic()

        def product(ta: Any = ta, tb: Any = tb) -> Any:
            return ta @ tb

        def known(c: Any, w: Any = twant) -> bool:
            return bool(torch.equal(c, w))

        rounds, fault = check(product, known, seconds / count)
        torch.cuda.synchronize(dev)
        tflops = 2 * GPU_N**3 * rounds / max(time.monotonic() - t0, 1e-9) / 1e12
        print(f"gpu {d}: {rounds} products, {tflops:.1f} TFLOP/s float32", flush=True)
        if fault is not None:
            return f"gpu {d} ({torch.cuda.get_device_name(dev)}): {fault}"
    return None


def _visible_gpus() -> list[str]:
    return [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]


def _torch_with_gpus() -> tuple[Any, str | None]:
    """(torch, None) to check the GPUs; (None, None) for a CPU job (the executor hid every GPU);
    (None, fault) when GPUs were given but cannot be checked: falling back to the CPU check
    would pass a node whose GPUs are gone (driver lost, all off the bus)."""
    given = _visible_gpus()
    if not given:
        return None, None
    try:
        import torch
    except ImportError:
        return None, f"GPUs {','.join(given)} given, but torch is not installed to check them"
    if not torch.cuda.is_available():
        return None, f"CUDA sees 0 GPUs of the {len(given)} given ({','.join(given)})"
    return torch, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cortex.training.burnin")
    p.add_argument("--seconds", type=float, default=5.0, help="how long to load each device")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= 3600:
        print("error: --seconds: must be in (0, 3600]", file=sys.stderr)
        return EXIT_BAD_INPUT
    torch, fault = _torch_with_gpus()
    if fault is None:
        fault = on_gpus(torch, args.seconds) if torch is not None else on_cpu(args.seconds)
    if fault is not None:
        print(f"burn-in failed: {fault}", file=sys.stderr, flush=True)
        return EXIT_FAULT
    print("burn-in passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
