"""A running job's efficiency on its page: its throughput (samples/s, from its latest progress
report: the metrics file or the API) per GPU it holds and per kW it draws.

The draw is the loop's published power books (modelled: the job's cap level's per-GPU watts,
`LivePower.report()`) and, where the power actuator can read every one of its GPUs (NVML),
measured now as well. The control plane keeps no history of either, so these are figures of
now, not a chart: the throughput's history is on the progress chart, and a job's draw over time
is in Prometheus (`cortex_power_job_watts`, scraped from /metrics)."""

from __future__ import annotations

from typing import Any


def efficiency(
    svc: Any, job_id: int, progress: dict[str, Any] | None, power: dict[str, Any] | None
) -> dict[str, Any] | None:
    """None unless the job is running and its current attempt reported samples/s."""
    rate = (progress or {}).get("samples_per_s")
    devices = tuple(svc.loop.mirror.held.get(job_id, ()))  # a dict read: atomic under the GIL
    if rate is None or not devices:
        return None
    out: dict[str, Any] = {
        "samples_per_s": rate,
        "reported_at": (progress or {}).get("reported_at"),
        "gpus": len(devices),
        "per_gpu": rate / len(devices),
        "modelled_w": None,
        "per_kw_modelled": None,
        "measured_w": None,
        "per_kw_measured": None,
    }
    if power is not None and power["watts"] > 0:
        out["modelled_w"] = power["watts"]
        out["per_kw_modelled"] = rate / (power["watts"] / 1e3)
    act = svc.loop.power.actuator if svc.loop.power is not None else None
    if act is not None:
        read = [act.draw_w(d) for d in devices]
        if all(w is not None for w in read) and sum(read) > 0:
            measured = float(sum(w for w in read if w is not None))
            out["measured_w"] = measured
            out["per_kw_measured"] = rate / (measured / 1e3)
    return out
