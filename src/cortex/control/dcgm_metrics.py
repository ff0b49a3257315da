"""Per-GPU metrics under the names NVIDIA's DCGM exporter gives them, so the dashboards and
alerts users already have work unchanged: `DCGM_FI_DEV_POWER_USAGE` (W) and
`DCGM_FI_DEV_GPU_UTIL` (%), labelled `gpu` and `UUID` as the exporter labels them, plus the
`team` and `queue` that hold the GPU now and, with `metrics_job_label`, the `job` (the
exporter maps GPUs to pods; Cortex maps them to jobs). Read through NVML at scrape time;
absent on a machine without GPUs."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("cortex.control")


class GpuReader(Protocol):
    def read(self, device: int) -> tuple[str, float | None, float | None] | None:
        """(UUID, power W, utilization %) of one device, or None if it cannot be read."""
        ...


class NvmlReader:
    """NVML (nvidia-ml-py), imported and initialised on first use."""

    def __init__(self) -> None:
        import pynvml

        self._nv: Any = pynvml
        self._lock = threading.Lock()
        pynvml.nvmlInit()

    def read(self, device: int) -> tuple[str, float | None, float | None] | None:
        nv = self._nv
        try:
            with self._lock:
                h = nv.nvmlDeviceGetHandleByIndex(device)
                uuid = nv.nvmlDeviceGetUUID(h)
                uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
                power = util = None
                with contextlib.suppress(nv.NVMLError):
                    power = float(nv.nvmlDeviceGetPowerUsage(h)) / 1000.0
                with contextlib.suppress(nv.NVMLError):
                    util = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                return uuid, power, util
        except Exception:
            return None


class DcgmCollector(Collector):
    def __init__(self, loop: Any, reader: GpuReader | None = None, job_label: bool = False) -> None:
        self._loop = loop
        self.reader = reader
        self.job_label = job_label
        self._failed = False

    def _get_reader(self) -> GpuReader | None:
        if self.reader is None and not self._failed:
            try:
                self.reader = NvmlReader()
            except Exception as err:  # no driver, no library: no per-GPU metrics
                self._failed = True
                log.info("per-GPU metrics off: NVML unavailable (%s)", err)
        return self.reader

    def collect(self) -> Iterator[Metric]:
        loop = self._loop
        if not loop.uses_gpus and self.reader is None:
            return  # CPU slots: nothing for NVML to read
        reader = self._get_reader()
        if reader is None:
            return
        owner = {d: jid for jid, devs in loop.view.devices.items() for d in devs}
        jobs = loop.mirror.jobs
        labels = ["gpu", "UUID", "Hostname", "team", "queue", *(["job"] if self.job_label else [])]
        power = GaugeMetricFamily(
            "DCGM_FI_DEV_POWER_USAGE",
            "Power draw (in W), and the job holding the GPU",
            labels=labels,
        )
        util = GaugeMetricFamily(
            "DCGM_FI_DEV_GPU_UTIL",
            "GPU utilization (in %), and the job holding the GPU",
            labels=labels,
        )
        for d in loop.all_devices:
            got = reader.read(d)
            if got is None:
                continue
            uuid, watts, pct = got
            jid = owner.get(d)
            job = jobs.get(jid) if jid is not None else None
            team = job.team if job is not None else ""
            # A queue per team (control/fleet.py): the queue is named for its team.
            key = [str(d), uuid, loop.node_name, team, team]
            if self.job_label:
                key.append("" if jid is None else str(jid))
            if watts is not None:
                power.add_metric(key, watts)
            if pct is not None:
                util.add_metric(key, pct)
        yield power
        yield util
