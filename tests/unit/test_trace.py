"""Trace CSV: public traces load, bad rows name their row and column, writes read back."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cortex.errors import InputError
from cortex.workload.job import Job
from cortex.workload.trace import convert_alibaba, read_trace, write_trace

SHARED = Path("/work/shared/traces")
PHILLY = sorted((SHARED / "philly-gavel").glob("*.csv"))
ALIBABA_PODS = SHARED / "alibaba-openb" / "openb_pod_list_default.csv"
BASE = "submit_time_s,num_gpus,duration_s"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def _philly_files() -> list[Path]:
    if not PHILLY:
        pytest.skip("shared Philly traces not present")
    return PHILLY


def test_every_philly_file_loads_as_is() -> None:
    for path in _philly_files():
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        jobs = read_trace(path)
        assert len(jobs) == len(rows)
        assert [j.id for j in jobs] == list(range(len(jobs)))
        submits = [j.submit_s for j in jobs]
        assert submits == sorted(submits)
        assert {j.name for j in jobs} == {r["job_id"] for r in rows}
        assert all(j.team == "research" and j.priority_class == "normal" for j in jobs)
        assert all(j.kind == "generic" and j.flavors == () for j in jobs)
        assert sum(j.gpus for j in jobs) == sum(int(r["num_gpus"]) for r in rows)


def test_defaults_and_optional_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name,submit_time_s,num_gpus,duration_s,team,priority,flavor,kind,checkpoint_write_s\n"
        "a,5,8,100,,,,,\n"
        "b,1,4096,3600.5,fsd,production,H200-SXM|H100-SXM5,fsd-video,9.5\n",
    )
    late, early = read_trace(path, default_team="optimus")[1], read_trace(path)[0]
    assert (early.id, early.name, early.team, early.gpus, early.work_s) == (
        0,
        "b",
        "fsd",
        4096,
        3600.5,
    )
    assert early.flavors == ("H200-SXM", "H100-SXM5")
    assert (early.kind, early.priority_class, early.ckpt_write_s) == (
        "fsd-video",
        "production",
        9.5,
    )
    assert (late.id, late.name, late.team, late.priority_class) == (1, "a", "optimus", "normal")
    assert (late.kind, late.flavors, late.ckpt_write_s) == ("generic", (), None)


def test_sort_is_stable_and_names_default(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{BASE}\n10,1,1\n0,2,1\n10,4,1\n0,8,1\n")
    jobs = read_trace(path)
    assert [j.gpus for j in jobs] == [2, 8, 1, 4]
    assert [j.name for j in jobs] == ["job-0", "job-1", "job-2", "job-3"]


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("submit_time_s,num_gpus\n0,1\n", "row 1: duration_s", "missing"),
        (f"{BASE}\n0,1,10\n0,,10\n", "row 3: num_gpus", "missing"),
        (f"{BASE}\n0,1\n", "row 2: duration_s", "missing"),
        (f"{BASE}\nsoon,1,10\n", "row 2: submit_time_s", "not a number"),
        (f"{BASE}\n0,one,10\n", "row 2: num_gpus", "not a number"),
        (f"{BASE}\n0,1,nan\n", "row 2: duration_s", "finite"),
        (f"{BASE}\n0,0,10\n", "row 2: num_gpus", "at least 1"),
        (f"{BASE}\n0,-2,10\n", "row 2: num_gpus", "at least 1"),
        (f"{BASE}\n0,1.5,10\n", "row 2: num_gpus", "whole number"),
        (f"{BASE}\n0,1,-10\n", "row 2: duration_s", "negative"),
        (f"{BASE}\n-1,1,10\n", "row 2: submit_time_s", "negative"),
        (f"{BASE},kind\n0,1,10,llm\n0,1,10,video\n", "row 3: kind", "unknown kind"),
        (f"{BASE},flavor\n0,1,10,H100-SXM5|A100\n", "row 2: flavor", "unknown flavor"),
        (f"{BASE},priority\n0,1,10,urgent\n", "row 2: priority", "unknown class"),
        (f"{BASE},team\n0,1,10,Bad Team\n", "row 2: team", "team"),
        (f"{BASE},checkpoint_write_s\n0,1,10,-3\n", "row 2: checkpoint_write_s", "negative"),
        ("", "row 1", "empty"),
        (f"{BASE}\n", "row 2", "no jobs"),  # ran an empty replay (a job file's `jobs: []` exits 2)
    ],
)
def test_bad_rows_raise_input_error_naming_row_and_column(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_trace(path)
    assert err.value.source == str(path)
    assert err.value.field == field
    assert reason in err.value.reason
    assert "\n" not in str(err.value)


def test_missing_file_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="<file>"):
        read_trace(tmp_path / "absent.csv")


def test_round_trip_write_read(tmp_path: Path) -> None:
    jobs = [
        Job(0, "big", "fsd", 8192, 432_000.0, priority_class="production",
            flavors=("H200-SXM", "H100-SXM5"), kind="fsd-video", submit_s=0.0, ckpt_write_s=9.4375),
        Job(1, "tiny", "research", 1, 0.1 + 0.2, priority_class="preemptible", kind="eval",
            submit_s=1 / 3),
        Job(2, "job,with comma", "optimus", 64, 7.0, kind="optimus-policy", submit_s=2.0),
    ]  # fmt: skip
    path = tmp_path / "out.csv"
    assert write_trace(jobs, path) == 3
    back = read_trace(path)
    fields = ("id", "name", "team", "gpus", "work_s", "priority_class", "flavors", "kind",
              "submit_s", "ckpt_write_s")  # fmt: skip
    for a, b in zip(jobs, back, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]


def test_convert_alibaba(tmp_path: Path) -> None:
    if not ALIBABA_PODS.exists():
        pytest.skip("shared Alibaba trace not present")
    out = tmp_path / "alibaba.csv"
    n = convert_alibaba(ALIBABA_PODS, out)
    with ALIBABA_PODS.open() as fh:
        pods = list(csv.DictReader(fh))
    kept = [
        p for p in pods
        if int(p["num_gpu"]) > 0 and p["scheduled_time"] and p["deletion_time"]
        and float(p["deletion_time"]) > float(p["scheduled_time"])
    ]  # fmt: skip
    jobs = read_trace(out)
    assert n == len(jobs) == len(kept) > 0
    assert all(j.gpus >= 1 and j.work_s > 0 and j.flavors == () for j in jobs)
    by_name = {j.name: j for j in jobs}
    for p in kept[:50]:
        j = by_name[p["name"]]
        assert j.gpus == int(p["num_gpu"])
        assert j.submit_s == float(p["creation_time"])
        assert j.work_s == float(p["deletion_time"]) - float(p["scheduled_time"])
        assert j.priority_class == ("preemptible" if p["qos"] == "BE" else "normal")


def test_convert_alibaba_rounds_fractions_up_and_drops_unscheduled(tmp_path: Path) -> None:
    pods = tmp_path / "pods.csv"
    pods.write_text(
        "name,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
        "cpu,0,0,,LS,Running,0,100,0\n"
        "frac,1,460,V100|T4,BE,Running,5,100,10\n"
        "pending,1,1000,,LS,Pending,6,50,\n"
        "zero,2,1000,,LS,Failed,7,20,20\n"
        "eight,8,1000,,LS,Running,1,40,2\n"
    )
    out = tmp_path / "out.csv"
    assert convert_alibaba(pods, out) == 2
    jobs = read_trace(out)
    assert [(j.name, j.gpus, j.submit_s, j.work_s) for j in jobs] == [
        ("eight", 8, 1.0, 38.0),
        ("frac", 1, 5.0, 90.0),
    ]
    with out.open() as fh:
        assert [r["gpu_spec"] for r in csv.DictReader(fh)] == ["", "V100|T4"]


def test_convert_alibaba_bad_input(tmp_path: Path) -> None:
    pods = tmp_path / "pods.csv"
    pods.write_text("name,num_gpu\nx,1\n")
    with pytest.raises(InputError, match="row 1: gpu_spec"):
        convert_alibaba(pods, tmp_path / "out.csv")


def test_checkpoint_on_signal_column(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(
        "submit_time_s,num_gpus,duration_s,checkpoint_on_signal\n0,1,10,false\n1,1,10,\n2,1,10,YES\n"
    )
    jobs = read_trace(p)
    assert [j.ckpt_on_signal for j in jobs] == [False, True, True]  # empty: the default
    out = tmp_path / "out.csv"
    write_trace(jobs, out)
    assert [j.ckpt_on_signal for j in read_trace(out)] == [False, True, True]
    p.write_text("submit_time_s,num_gpus,duration_s,checkpoint_on_signal\n0,1,10,maybe\n")
    with pytest.raises(InputError, match="row 2: checkpoint_on_signal"):
        read_trace(p)
