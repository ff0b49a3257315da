"""The executor's pure parts: outcome rules, GPU naming, handle parsing, /proc parsing."""

from __future__ import annotations

import json
import os
import re
import sys
import types
from pathlib import Path

import pytest

from cortex.executors.local.executor import (
    Handle,
    LaunchSpec,
    LocalExecutor,
    job_env,
    outcome_for,
)
from cortex.executors.local.gpus import GpuInfo, visible
from cortex.executors.local.procfs import parse_stat, proc_stat
from cortex.executors.local.runner import rank_env
from cortex.fleet.catalog import load_catalog
from cortex.fleet.nvml_names import flavor_for


@pytest.mark.parametrize(
    ("stop", "code", "outcome"),
    [
        (None, 0, "completed"),
        (None, 75, "preempted"),
        (None, 1, "failed"),
        (None, None, "failed"),  # killed by a signal, or no verdict
        ("preempt", 75, "preempted"),
        ("preempt", None, "preempted"),  # SIGKILL after the grace period
        ("preempt", 0, "preempted"),  # exited cleanly on SIGTERM: not finished, requeue
        ("preempt", 1, "preempted"),
        ("cancel", 0, "cancelled"),
        ("cancel", 75, "cancelled"),
        ("cancel", None, "cancelled"),
    ],
)
def test_outcome_rules(stop: str | None, code: int | None, outcome: str) -> None:
    assert outcome_for(stop, code) == outcome  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("nvml_name", "flavor"),
    [
        ("NVIDIA H100 80GB HBM3", "H100-SXM5"),
        ("NVIDIA H100 SXM5 80GB", "H100-SXM5"),
        ("NVIDIA H200", "H200-SXM"),
        ("NVIDIA H200 NVL", "H200-SXM"),
        ("NVIDIA B200", "B200-HGX"),
        ("NVIDIA GB200", "B200-GB200"),
        # Not the catalog's boards: kept under their own (tidied) names.
        ("NVIDIA H100 PCIe", "H100-PCIe"),
        ("NVIDIA A100-SXM4-80GB", "A100-SXM4-80GB"),
        ("Tesla T4", "Tesla-T4"),
    ],
)
def test_flavor_names(nvml_name: str, flavor: str) -> None:
    assert flavor_for(nvml_name) == flavor


def test_mapped_flavors_are_in_the_fleet_catalog() -> None:
    catalog = load_catalog()
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA B200", "NVIDIA GB200"):
        assert flavor_for(name) in catalog
    assert "CPU-SLOT" in catalog


def test_service_cuda_visible_devices_limits_discovery() -> None:
    gpus = [GpuInfo(i, "NVIDIA H100 80GB HBM3", f"GPU-{i}aaa", 79.6) for i in range(4)]
    assert visible(gpus, {}) == gpus
    assert visible(gpus, {"CUDA_VISIBLE_DEVICES": ""}) == []
    assert [g.index for g in visible(gpus, {"CUDA_VISIBLE_DEVICES": "2,0"})] == [2, 0]
    assert [g.index for g in visible(gpus, {"CUDA_VISIBLE_DEVICES": "GPU-3"})] == [3]
    # CUDA stops at the first entry it cannot resolve.
    assert [g.index for g in visible(gpus, {"CUDA_VISIBLE_DEVICES": "1,9,2"})] == [1]


def test_discover_cpu_slots() -> None:
    inv = LocalExecutor.discover(3, gpus=False)
    assert (inv.kind, inv.flavor, inv.count, inv.devices) == ("cpu", "CPU-SLOT", 3, [0, 1, 2])
    assert LocalExecutor.discover(gpus=False).count == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="slots"):
        LocalExecutor.discover(0, gpus=False)


def test_user_env_cannot_override_the_allocation() -> None:
    spec = LaunchSpec(
        job_id=5,
        attempt=2,
        command=["x"],
        env={"CUDA_VISIBLE_DEVICES": "0,1,2,3", "CORTEX_JOB_ID": "1", "OMP_NUM_THREADS": "8"},
        working_dir=None,
        devices=[1],
        uses_gpus=True,
    )
    env = job_env(
        spec,
        base={"PATH": "/bin", "CORTEX_DATABASE_URL": "postgresql://u:pw@h/db", "WORLD_SIZE": "8"},
        checkpoint_dir=Path("/c"),
        metrics_file=Path("/m"),
    )
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["CORTEX_JOB_ID"] == "5"
    assert env["CORTEX_ATTEMPT"] == "2"
    assert env["OMP_NUM_THREADS"] == "8"  # not reserved: the user's choice stands
    assert env["PATH"] == "/bin"
    assert "CORTEX_DATABASE_URL" not in env
    assert "WORLD_SIZE" not in env


def test_rank_env() -> None:
    base = {"A": "1"}
    assert rank_env(base, 0, 1, 0) == base
    env = rank_env(base, 1, 4, 29500)
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["MASTER_PORT"]) == (
        "1",
        "1",
        "4",
        "29500",
    )


def _handle() -> Handle:
    return Handle(
        job_id=1,
        attempt=2,
        pid=100,
        pgid=100,
        start_ticks=12345,
        boot_id="b",
        run_dir="/r",
        stdout_path="/r/stdout.log",
        stderr_path="/r/stderr.log",
        devices=(0, 3),
    )


def test_handle_round_trips_through_json() -> None:
    h = _handle()
    assert Handle.from_dict(json.loads(json.dumps(h.to_dict()))) == h


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pid": "100"}, "handle.pid"),
        ({"start_ticks": None}, "handle.start_ticks"),
        ({"devices": [0, "1"]}, "handle.devices"),
        ({"devices": [True]}, "handle.devices"),
        ({"attempt": False}, "handle.attempt"),
        ({"run_dir": 3}, "handle.run_dir"),
    ],
)
def test_bad_handle_names_the_field(change: dict[str, object], field: str) -> None:
    d = {**_handle().to_dict(), **change}
    with pytest.raises(ValueError, match=re.escape(field)):
        Handle.from_dict(d)
    d = _handle().to_dict()
    del d["boot_id"]
    with pytest.raises(ValueError, match=re.escape("handle.boot_id")):
        Handle.from_dict(d)


def test_parse_stat_survives_odd_command_names() -> None:
    line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 " + " ".join(["0"] * 12) + " 777 0 0"
    st = parse_stat(4242, line)
    assert (st.state, st.ppid, st.pgrp, st.session, st.start_ticks) == ("S", 1, 4242, 4242, 777)
    me = proc_stat(os.getpid())
    assert me is not None
    assert (me.pid, me.pgrp, me.finished) == (os.getpid(), os.getpgid(0), False)


class _FakeNvml(types.ModuleType):
    """Stands in for pynvml (no GPU on CI): the calls `gpus.nvml_gpus` makes, with the types the
    real library returns (names as bytes in older releases)."""

    class NVMLError(Exception):
        pass

    def __init__(self, names: list[str], *, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.names, self.fail_init, self.shut = names, fail_init, False

    def nvmlInit(self) -> None:  # noqa: N802 (pynvml's names)
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:  # noqa: N802 (pynvml's names)
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 (pynvml's names)
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802 (pynvml's names)
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:  # noqa: N802 (pynvml's names)
        return self.names[h].encode()

    def nvmlDeviceGetUUID(self, h: int) -> str:  # noqa: N802 (pynvml's names)
        return f"GPU-{h}0000000-aaaa"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> types.SimpleNamespace:  # noqa: N802 (pynvml's names)
        return types.SimpleNamespace(total=81559 * 2**20)  # an H100 SXM5 as NVML reports it


def test_discover_gpus_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeNvml(["NVIDIA H100 80GB HBM3"] * 4)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    inv = LocalExecutor.discover(slots=3)
    assert (inv.kind, inv.flavor, inv.count, inv.devices) == ("gpu", "H100-SXM5", 4, [0, 1, 2, 3])
    assert inv.memory_gb == 79.6
    assert fake.shut
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert LocalExecutor.discover().devices == [3, 1]
    assert LocalExecutor.discover(2, gpus=False).kind == "cpu"


def test_no_driver_means_cpu_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml(["NVIDIA H100"], fail_init=True))
    inv = LocalExecutor.discover(slots=3)
    assert (inv.kind, inv.count) == ("cpu", 3)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: import fails
    assert LocalExecutor.discover(slots=2).kind == "cpu"


def test_an_upgrade_removes_the_env_old_run_dirs_kept_in_plain_text(tmp_path: Path) -> None:
    """Found in review: runs launched before the env went through the runner's stdin keep the
    decrypted env in spec.json, and run dirs are kept. The executor drops it once per root."""
    from cortex.executors.local.executor import SCRUBBED_MARK, LocalExecutor

    root = tmp_path / "runs"
    spec = root / "jobs" / "7" / "attempts" / "1" / "spec.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({"command": ["true"], "env": {"API_KEY": "s3cret", "A": "1"}}))
    other = root / "jobs" / "8" / "attempts" / "1" / "spec.json"
    other.parent.mkdir(parents=True)
    other.write_text("{not json")  # a torn file is left alone, not a crash
    LocalExecutor(root, allow_same_user=True)
    got = json.loads(spec.read_text())
    assert "env" not in got and got["env_names"] == ["A", "API_KEY"]
    assert got["command"] == ["true"]
    assert "s3cret" not in spec.read_text() and (root / SCRUBBED_MARK).exists()
    assert spec.stat().st_mode & 0o077 == 0
