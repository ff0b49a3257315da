"""Training workloads on CPU: one command, results in bench/out/training.json.

    python bench/training.py                 # tiny and small, both workloads (about 3 minutes)
    python bench/training.py --configs tiny

For each workload and config, three figures, each measured in its own process with one thread
(OMP_NUM_THREADS=1, as on the shared 2-core machines):

- `fixed_batch`: training steps on one batch generated up front (the model alone; this is what
  `cortex.training.calibrate` times on a GPU), samples/s and step time;
- `job`: the real entry point (`python -m cortex.training.<workload>`) with one DataLoader worker
  generating procedural data, samples/s and step time from its metrics file, first window dropped;
- `generator`: procedural samples/s of the data generator alone, one process.

The ratio job / fixed_batch is the share of model speed the full job keeps; on GPU machines the
generator must keep ahead of the model, so generator samples/s per worker is the figure to watch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
JOB_STEPS = {"tiny": 60, "small": 40}

FIXED = """
import json, torch
from cortex.training.calibrate import measure
r = measure({w!r}, {c!r}, None, torch.device('cpu'), seconds=8.0, warmup=2, max_steps=200)
print(json.dumps({{k: r[k] for k in ('batch_size', 'params', 'steps_timed', 'step_s',
                                     'samples_per_s', 'flops_per_sample')}}))
"""

GEN = """
import json, time
from cortex.training.config import build_config
from cortex.training.workloads import WORKLOADS
cfg = build_config({w!r}, {c!r})
gen = WORKLOADS[{w!r}].make_generator(cfg.model, 0)
gen.sample(0)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < 4.0:
    gen.sample(n)
    n += 1
print(json.dumps({{'samples_per_s': n / (time.perf_counter() - t0), 'samples': n}}))
"""


def _py(code: str) -> dict:
    out = subprocess.run([PY, "-c", code], env=ENV, cwd=ROOT, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _job(workload: str, config: str) -> dict:
    steps = JOB_STEPS[config]
    every = steps // 4
    with tempfile.TemporaryDirectory() as tmp:
        mfile = Path(tmp) / "m.jsonl"
        subprocess.run(
            [PY, "-m", f"cortex.training.{workload}", "--config", config, "--steps", str(steps),
             "--log-every", str(every), "--num-workers", "1", "--metrics-file", str(mfile)],
            env=ENV, cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        lines = [json.loads(s) for s in mfile.read_text().splitlines()]
    windows = [d for d in lines if "loss" in d][1:]  # the first window holds start-up
    step_s = sum(d["step_s"] for d in windows) / len(windows)
    return {
        "steps": steps,
        "step_s": step_s,
        "samples_per_s": sum(d["samples_per_s"] for d in windows) / len(windows),
        "final_loss": windows[-1]["loss"],
        "final_baseline_loss": windows[-1]["baseline_loss"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", default="tiny,small")
    ap.add_argument("--workloads", default="fsd,optimus")
    args = ap.parse_args()
    results: dict = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "threads": 1},
        "runs": {},
    }  # fmt: skip
    for w in args.workloads.split(","):
        for c in args.configs.split(","):
            fixed = _py(FIXED.format(w=w, c=c))
            job = _job(w, c)
            gen = _py(GEN.format(w=w, c=c))
            results["runs"][f"{w}/{c}"] = {
                "fixed_batch": fixed,
                "job": job,
                "generator": gen,
                "ratio_job_to_fixed_samples_per_s": round(
                    job["samples_per_s"] / fixed["samples_per_s"], 3
                ),
            }
            print(
                f"{w}/{c}: fixed {fixed['samples_per_s']:.1f} samples/s "
                f"({fixed['step_s'] * 1000:.1f} ms/step), job {job['samples_per_s']:.1f} "
                f"samples/s, generator {gen['samples_per_s']:.1f} samples/s",
                flush=True,
            )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "training.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT / 'training.json'}")


if __name__ == "__main__":
    main()
