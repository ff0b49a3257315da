"""Every check that needs a GPU, in one call: `python bench/gpu_check.py --out DIR`.

A lent GPU machine is short of device time, not of work, so one prepared script does it all
(the tests never need a GPU; docs/training.md says what each check covers):

1. the calibration: `python -m cortex.calibrate --out DIR/cal --seconds S` (both workloads at
   the `large` preset, bf16 autocast, NVML power, peak memory, MFU);
2. the job protocol on CUDA, optimus `small` with `--deterministic`: an uninterrupted run to
   step 24 against one stopped by SIGTERM at step 13 (exit 75) and resumed: the model and
   optimizer must be bitwise equal, which proves the CUDA RNG state and the data position
   resume; its metrics lines must carry NVML power and peak memory;
3. fsd `small` on CUDA with the default (non-deterministic) kernels: SIGTERM at 13, exit 75,
   resume to 24, exit 0; and whether `--deterministic` runs at all (some CUDA backward kernels
   have no deterministic version, and torch then refuses: the job must exit 2 in one line);
4. the calibration's out-of-memory halving: optimus `large` under a memory cap (a fraction of
   the card, so the preset's batch cannot fit) must retry at half batches until it fits.

Each check records pass/fail with its evidence in DIR/gpu_check.json; a failing check does not
stop the others. `--device cpu` runs the same script on CPU with the calibration's smoke mode
and a 1-step OOM probe skipped (for checking the script before spending device time).
NCCL is not checked: DDP needs two GPUs (two ranks on one GPU are refused by NCCL).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the checkpoint reader, without an install
COMMON = ("--config", "small", "--steps", "24", "--checkpoint-every", "8", "--log-every", "4")


def _env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")}
    e.update(PYTHONUNBUFFERED="1", PYTHONPATH=f"{ROOT / 'src'}:{e.get('PYTHONPATH', '')}")
    e.update(extra)
    return e


def _train(workload: str, *args: str, timeout: float = 240, **extra: str) -> tuple[int, str]:
    try:
        p = subprocess.run(
            [sys.executable, "-m", f"cortex.training.{workload}", *args], env=_env(**extra),
            cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:  # a hang is a finding: keep what it printed
        tail = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else ""
        return -9, f"timed out after {timeout} s; stderr: {tail[-2500:]}"
    return p.returncode, p.stderr[-3000:]


def _interrupted(workload: str, args: tuple[str, ...], job: Path, at: int) -> dict[str, Any]:
    """Start a run, SIGTERM its process group once it has finished step `at`, then resume it."""
    marker = job.parent / f"{job.name}-at"
    mfile = job.parent / f"{job.name}.jsonl"
    extra = {"CORTEX_CHECKPOINT_DIR": str(job), "CORTEX_METRICS_FILE": str(mfile),
             "CORTEX_TEST_PAUSE_AT_STEP": f"{at}:{marker}"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", f"cortex.training.{workload}", *args], env=_env(**extra), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, err1 = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # it ignored SIGTERM: it must not hold the GPU after us
        os.killpg(proc.pid, signal.SIGKILL)
        _, err1 = proc.communicate()
    extra.pop("CORTEX_TEST_PAUSE_AT_STEP")
    rc2, err2 = _train(workload, *args, **extra)
    lines = [json.loads(x) for x in mfile.read_text().splitlines()] if mfile.exists() else []
    return {"rc_interrupted": proc.returncode, "rc_resumed": rc2,
            "events": [(d["event"], d["step"]) for d in lines if "event" in d],
            "last_metrics": next((d for d in reversed(lines) if "loss" in d), None),
            "stderr": (err1[-1500:], err2[-1500:])}  # fmt: skip


def _bitwise(a: Path, b: Path, step: int) -> tuple[bool, str]:
    import torch

    from cortex.training import checkpoint as ck

    sa, sb = (ck.read(ck.checkpoint_path(d, step)) for d in (a, b))
    for k, v in sa["model"].items():
        if not torch.equal(v, sb["model"][k]):
            return False, f"model[{k}] differs"
    for idx, st in sa["optimizer"]["state"].items():
        for k, v in st.items():
            if not torch.equal(v, sb["optimizer"]["state"][idx][k]):
                return False, f"optimizer[{idx}][{k}] differs"
    return True, f"{len(sa['model'])} tensors equal"


def check_calibration(out: Path, seconds: float, cpu: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "cortex.calibrate", "--out", str(out / "cal"),
           "--seconds", str(seconds)] + (["--smoke"] if cpu else [])  # fmt: skip
    p = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=420,
                       check=False)  # fmt: skip
    ok = p.returncode == 0 and (out / "cal" / "calibration.csv").exists()
    res: dict[str, Any] = {"ok": ok, "rc": p.returncode, "stderr": p.stderr[-4000:]}
    if not ok and "mha_graph" in p.stderr:
        # cuDNN's fused attention refused a shape: measure again without it, and say so
        retry = [
            sys.executable,
            "-c",
            "import runpy, sys, torch; "
            "torch.backends.cuda.enable_cudnn_sdp(False); sys.argv[0] = 'calibrate'; "
            "runpy.run_module('cortex.calibrate', run_name='__main__')",
            *cmd[3:],
        ]
        q = subprocess.run(retry, env=_env(), cwd=ROOT, capture_output=True, text=True,
                           timeout=420, check=False)  # fmt: skip
        res.update(retry_without_cudnn_sdp_rc=q.returncode, retry_stderr=q.stderr[-4000:],
                   ok=q.returncode == 0 and (out / "cal" / "calibration.csv").exists())  # fmt: skip
    return res


def check_resume_bitwise(tmp: Path, device: str) -> dict[str, Any]:
    args = (*COMMON, "--device", device, "--deterministic", "--num-workers", "1")
    ref = tmp / "opt-ref"
    rc, err = _train("optimus", *args, CORTEX_CHECKPOINT_DIR=str(ref))
    res = _interrupted("optimus", args, tmp / "opt-job", 13)
    res["rc_reference"] = rc
    equal, why = _bitwise(ref, tmp / "opt-job", 24) if rc == 0 and res["rc_resumed"] == 0 else (
        False, f"reference rc {rc}: {err[-500:]}")  # fmt: skip
    m = res["last_metrics"] or {}
    res.update(bitwise=equal, bitwise_detail=why)
    res["ok"] = (equal and res["rc_interrupted"] == 75 and ("resume", 13) in
                 [tuple(e) for e in res["events"]]
                 and (device == "cpu" or (m.get("gpu_power_w") is not None
                                          and m.get("gpu_mem_peak_gb") is not None)))  # fmt: skip
    return res


def check_fsd(tmp: Path, device: str) -> dict[str, Any]:
    res = _interrupted("fsd", (*COMMON, "--device", device), tmp / "fsd-job", 13)
    rc, err = _train("fsd", *COMMON, "--device", device, "--deterministic", "--steps", "4",
                     "--log-every", "2", "--num-workers", "0", timeout=60)  # fmt: skip
    res.update(deterministic_rc=rc, deterministic_stderr=err[-1500:])
    # `--deterministic` either runs (0) or is refused in one `error: --deterministic:` line (2);
    # a traceback (1) or a hang means the refusal path did not hold on this device.
    last = err.strip().splitlines()[-1] if err.strip() else ""
    refused = rc == 2 and last.startswith("error: --deterministic: ")
    resumed = ("resume", 13) in [tuple(e) for e in res["events"]]
    res["ok"] = (res["rc_interrupted"] == 75 and resumed and res["rc_resumed"] == 0
                 and (rc == 0 or refused))  # fmt: skip
    return res


def check_attention(device: str) -> dict[str, Any]:
    """fsd large's two attention shapes, forward and backward in bf16, under each fused
    attention backend: which one refuses which shape."""
    if device == "cpu":
        return {"ok": None, "skipped": "fused attention backends are CUDA only"}
    p = subprocess.run([sys.executable, __file__, "--attention-probe"], env=_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=240, check=False)  # fmt: skip
    try:
        r: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "rc": p.returncode, "stderr": p.stderr[-3000:]}
    # Which backend refuses the whole temporal call is a finding either way; the shapes the
    # model runs (the lift, the temporal call in chunks) must run under the default choice.
    r["ok"] = r.get("lift/default") == "ok" and r.get("temporal_chunked/default") == "ok"
    return r


def attention_probe() -> None:
    import torch
    from torch import nn
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    dev = torch.device("cuda", 0)
    lift = nn.MultiheadAttention(256, 8, batch_first=True).to(dev)
    temporal = nn.TransformerEncoderLayer(256, 8, 512, dropout=0.0, batch_first=True,
                                          norm_first=True).to(dev)  # fmt: skip
    q = torch.randn(256, 1024, 256, device=dev, requires_grad=True)
    kv = torch.randn(256, 4096, 256, device=dev, requires_grad=True)
    x = torch.randn(65536, 4, 256, device=dev, requires_grad=True)
    cases = {
        "lift": lambda: lift(q, kv, kv, need_weights=False)[0],
        "temporal": lambda: temporal(x),
        "temporal_chunked": lambda: torch.cat([temporal(c) for c in x.split(32768)]),
    }
    backends = {
        "default": None,
        "cudnn": [SDPBackend.CUDNN_ATTENTION],
        "flash": [SDPBackend.FLASH_ATTENTION],
        "efficient": [SDPBackend.EFFICIENT_ATTENTION],
    }
    out: dict[str, str] = {}
    for cname, fn in cases.items():
        for bname, allowed in backends.items():
            try:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    if allowed is None:
                        y = fn()
                    else:
                        with sdpa_kernel(allowed):
                            y = fn()
                y.float().sum().backward()
                torch.cuda.synchronize()
                out[f"{cname}/{bname}"] = "ok"
            except Exception as err:  # the probe records what each backend says
                out[f"{cname}/{bname}"] = f"{type(err).__name__}: {str(err)[:160]}"
            torch.cuda.synchronize()
    print(json.dumps(out))


def check_oom_halving(device: str) -> dict[str, Any]:
    if device == "cpu":
        return {"ok": None, "skipped": "no CUDA memory to cap on CPU"}
    p = subprocess.run([sys.executable, __file__, "--oom-probe"], env=_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    try:
        r = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "rc": p.returncode, "stderr": p.stderr[-3000:]}
    r["ok"] = r["batch_size"] < 128 and "out of memory at batch 128" in p.stderr
    r["stderr"] = p.stderr[-1500:]
    return r


def oom_probe() -> None:
    """optimus large (batch 128 by preset) with the process held to 4% of the card (~5.6 GiB of
    an H200): the preset cannot fit, and `measure` must halve until it does."""
    import torch

    from cortex.training import calibrate as m

    torch.cuda.set_per_process_memory_fraction(0.04, 0)
    device = torch.device("cuda", 0)
    m.prepare(device)
    r = m.measure("optimus", "large", None, device, 3.0, 2, 1000)
    print(json.dumps({k: r[k] for k in ("batch_size", "steps_timed", "peak_mem_gb", "step_s")}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpu-check"))
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--only", default="attention,calibration,resume,fsd,oom")
    ap.add_argument("--oom-probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--attention-probe", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.oom_probe:
        oom_probe()
        return 0
    if a.attention_probe:
        attention_probe()
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu-check-{os.getpid()}"
    tmp.mkdir(parents=True)
    checks = {
        "calibration": lambda: check_calibration(a.out, a.seconds, a.device == "cpu"),
        "resume": lambda: check_resume_bitwise(tmp, a.device),
        "fsd": lambda: check_fsd(tmp, a.device),
        "oom": lambda: check_oom_halving(a.device),
        "attention": lambda: check_attention(a.device),
    }
    report: dict[str, Any] = {}
    for name in a.only.split(","):
        t0 = time.monotonic()
        try:
            report[name] = checks[name]()
        except Exception as err:  # a broken check must not cost the others their device time
            report[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        report[name]["wall_s"] = round(time.monotonic() - t0, 1)
        print(f"{name}: ok={report[name]['ok']} in {report[name]['wall_s']} s", flush=True)
        (a.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    return 0 if all(r["ok"] in (True, None) for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
