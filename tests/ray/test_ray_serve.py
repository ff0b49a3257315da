"""End to end on Ray: the real `cortex serve --executor ray` (subprocess) against a real
two-node loopback Ray cluster. Gang and per-rank logs, preemption with checkpoint and resume,
kill -9 of the service while a gang runs, and node loss with resume on the rejoined node (last:
it changes the cluster)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from raykit import LoopbackCluster
from rayserve import ray_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "control"))
from live import LiveServer, wait_for

from cortex.control import models as m

# Counts steps; rank 0 saves the step after each one (so a lost node loses at most one), and on
# SIGTERM every rank exits 75 (checkpointed). A resumed attempt starts from the saved step.
# argv: the last step, then the seconds per step of the first attempt (later ones run fast).
STEPPER = """
import os, signal, sys, time
ckpt = os.path.join(os.environ["CORTEX_CHECKPOINT_DIR"], "step.txt")
rank = os.environ["RANK"]
step = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
if step:
    print(f"resumed from step {step}", flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(75))
limit = int(sys.argv[1])
pace = float(sys.argv[2]) if os.environ["CORTEX_ATTEMPT"] == "1" else 0.002
while step < limit:
    step += 1
    if rank == "0":
        with open(ckpt + ".tmp", "w") as f:
            f.write(str(step))
        os.replace(ckpt + ".tmp", ckpt)
    print(f"step {step}", flush=True)
    time.sleep(pace)
print(f"done at step {step} on {os.environ['CORTEX_NODE']}", flush=True)
"""
WHERE = "import os; print(os.environ['RANK'], os.environ['CORTEX_NODE'], os.environ['WORLD_SIZE'])"


@pytest.fixture(scope="module")
def server(
    cluster: LoopbackCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    srv = ray_server(tmp_path_factory.mktemp("rayserve"), cluster.address)
    try:
        yield srv
    finally:
        srv.stop()
        srv.cleanup_runs()  # closes the test's HTTP clients


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> str:
    p = tmp_path_factory.mktemp("scripts") / "stepper.py"
    p.write_text(textwrap.dedent(STEPPER))
    return str(p)


def _submit(c: httpx.Client, **kw: Any) -> int:
    body = {"name": "ray", "gpus": 16, "nprocs": 2, "duration_s": 30, **kw}
    r = c.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _job(c: httpx.Client, job_id: int) -> dict[str, Any]:
    r = c.get(f"/v1/jobs/{job_id}")
    r.raise_for_status()
    return dict(r.json())


def _state(c: httpx.Client, job_id: int, *states: str) -> dict[str, Any] | None:
    j = _job(c, job_id)
    return j if j["state"] in states else None


def _log(c: httpx.Client, job_id: int, rank: int = 0) -> str:
    return c.get(f"/v1/jobs/{job_id}/logs", params={"rank": rank}).text


def test_a_gang_spans_both_nodes_and_each_rank_logs_apart(server: LiveServer) -> None:
    c = server.client(server.team_token("fsd"))
    jid = _submit(c, command=[sys.executable, "-c", WHERE])
    job = wait_for(lambda: _state(c, jid, "completed", "failed"), "the gang to end", 120)
    assert job["state"] == "completed", job
    # 16 GPUs = both 8-GPU nodes; 2 ranks, one per node, in node order.
    assert _log(c, jid, 0).split() == ["0", "node-a", "2"]
    assert _log(c, jid, 1).split() == ["1", "node-b", "2"]


def test_preemption_checkpoints_the_low_gang_which_resumes(server: LiveServer, script: str) -> None:
    c = server.client(server.team_token("fsd"))
    low = _submit(c, priority_class="preemptible", command=[sys.executable, script, "600", "0.1"])
    wait_for(lambda: "step 3" in _log(c, low), "the low gang to step", 120)
    high = _submit(
        c,
        gpus=8,
        nprocs=1,
        priority_class="production",
        command=[sys.executable, "-c", "print('hi')"],
    )
    done = wait_for(lambda: _state(c, high, "completed", "failed"), "the high job", 120)
    assert done["state"] == "completed", done
    final = wait_for(lambda: _state(c, low, "completed", "failed"), "the low gang to resume", 180)
    assert final["state"] == "completed", final
    assert (final["attempt"], final["preemptions"]) == (2, 1)
    out = _log(c, low)
    assert "resumed from step" in out and "done at step 600" in out


def test_kill9_of_the_service_adopts_the_running_gang(server: LiveServer, script: str) -> None:
    c = server.client(server.team_token("fsd"))
    jid = _submit(c, command=[sys.executable, script, "60", "0.2"])
    wait_for(lambda: "step 2" in _log(c, jid), "the gang to step", 120)
    server.kill9()
    server.start()
    c = server.client(server.team_token("fsd"))
    job = wait_for(lambda: _state(c, jid, "completed", "failed"), "the adopted gang", 120)
    # Adopted, not rerun: one attempt, and the log of that attempt ends the count.
    assert (job["state"], job["attempt"], job["failures"]) == ("completed", 1, 0), job
    assert "done at step 60" in _log(c, jid)
    kinds = [e.kind for e in server.rows(m.Event, m.Event.job_id == jid)]
    assert "adopt" in kinds and "lost" not in kinds


def test_node_loss_requeues_and_the_job_resumes_when_the_node_rejoins(
    server: LiveServer, script: str, cluster: LoopbackCluster
) -> None:
    c = server.client(server.team_token("fsd"))
    jid = _submit(c, command=[sys.executable, script, "400", "0.2"])
    wait_for(lambda: "step 5" in _log(c, jid), "the gang to step", 120)
    cluster.kill("node-b")
    requeued = wait_for(lambda: _state(c, jid, "requeued", "queued"), "the requeue", 60)
    assert requeued["attempt"] == 1
    msgs = [e.message for e in server.rows(m.Event, m.Event.job_id == jid)]
    assert any("node node-b lost" in msg for msg in msgs), msgs
    # 16 GPUs cannot fit on node-a alone: it waits for node-b.
    cluster.add("node-b", **{"cortex.pod": "p1", "cortex.rack": "r2"})
    job = wait_for(lambda: _state(c, jid, "completed", "failed"), "the resumed gang", 180)
    assert (job["state"], job["attempt"]) == ("completed", 2), job
    out = _log(c, jid)
    # Resumed from rank 0's last saved step (at least 5), and counted on to the end.
    resumed = int(out.split("resumed from step ")[1].split()[0])
    assert resumed >= 5 and "done at step 400" in out
