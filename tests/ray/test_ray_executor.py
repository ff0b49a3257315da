"""The Ray executor on a real two-node Ray cluster (loopback, fake GPUs): fleet, gang launch
with torchrun's variables per node, rank logs, exits, stops, placement timeout, adoption by a
new executor, node loss. The node-loss test changes the cluster, so it runs last."""

from __future__ import annotations

import dataclasses
import re
import socket
import sys

import pytest
import ray
from raykit import LoopbackCluster, wait_for

from cortex.executors.ray.executor import RayExecutor
from cortex.executors.spec import ExitRecord, LaunchSpec

TWO_NODES = (("node-a", tuple(range(8))), ("node-b", tuple(range(8))))
REPORT = (
    "import os; print(' '.join(os.environ.get(k, '-') for k in "
    "('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'CORTEX_NODE', 'CUDA_VISIBLE_DEVICES', "
    "'MASTER_ADDR', 'LOCAL_WORLD_SIZE', 'GROUP_RANK')))"
)
# Sleeps until SIGTERM, then "checkpoints" (exit 75), as the training workloads do.
CHECKPOINTING = (
    "import signal, sys, time; "
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(75)); print('up', flush=True); "
    "time.sleep(600)"
)


def spec(job_id: int, code: str, *, nodes=TWO_NODES, nprocs: int = 16, attempt: int = 1):
    devices = list(range(sum(len(d) for _, d in nodes)))
    return LaunchSpec(
        job_id=job_id,
        attempt=attempt,
        command=[sys.executable, "-c", code],
        env={"OMP_NUM_THREADS": "1"},
        working_dir=None,
        devices=devices,
        nprocs=nprocs,
        uses_gpus=True,
        nodes=nodes,
    )


def up(ex: RayExecutor, job_id: int, nprocs: int) -> None:
    """Poll (which moves the launch on) until every rank has printed "up"."""

    def check() -> bool:
        assert ex.poll() == []
        logs = [ex.rank_log_paths(job_id, 1, r)[0] for r in range(nprocs)]
        return ex.is_running(job_id, 1) and all("up" in p.read_text() for p in logs)

    wait_for(check, 90, 0.1)


def ended(ex: RayExecutor, timeout_s: float = 90.0) -> ExitRecord:
    got: list[ExitRecord] = []

    def one() -> bool:
        got.extend(ex.poll())
        return bool(got)

    wait_for(one, timeout_s, every_s=0.1)
    assert len(got) == 1, got
    return got[0]


@pytest.fixture(scope="module")
def ex(cluster: LoopbackCluster, tmp_path_factory: pytest.TempPathFactory) -> RayExecutor:
    return RayExecutor(
        tmp_path_factory.mktemp("rayruns"), cluster.address, grace_s=2.0, pg_timeout_s=60.0
    )


def test_fleet_is_the_labelled_gpu_nodes(ex: RayExecutor) -> None:
    fleet = ex.discover()
    # The head has no label and no GPUs: left out. node-a and node-b: 8 fake GPUs each, no
    # flavor label and no accelerator_type resource, so the default flavor.
    assert fleet.names == ["node-a", "node-b"]
    assert [(n.gpus, n.flavor, n.pod, n.rack) for n in fleet.nodes] == [
        (8, "H100-SXM5", "p1", "r1"),
        (8, "H100-SXM5", "p1", "r2"),
    ]
    group = fleet.spec.halls[0].groups[0]
    assert (group.nodes, group.gpus_per_node, group.nodes_per_pod) == (2, 8, 2)


def test_sixteen_ranks_on_two_nodes_get_torchrun_variables(ex: RayExecutor) -> None:
    h = ex.launch(spec(1, REPORT))
    assert h.kind == "ray" and h.payload["agents"] == ["cortex-1-1-n0", "cortex-1-1-n1"]
    rec = ended(ex)
    assert (rec.outcome, rec.exit_code) == ("completed", 0), rec
    rows = []
    for rank in range(16):
        out, _ = ex.rank_log_paths(1, 1, rank)
        rows.append(out.read_text().split())
    # 16 ranks over 8 + 8 devices: ranks 0-7 on node-a (LOCAL_RANK 0-7), 8-15 on node-b.
    for rank, row in enumerate(rows):
        node = "node-a" if rank < 8 else "node-b"
        assert row[:4] == [str(rank), str(rank % 8), "16", node], row
        assert len(row[4].split(",")) == 8  # the node's 8 GPUs, as Ray assigned the bundle
        assert row[5] == "127.0.0.3"  # rank 0's node (node-a, the first added)
        assert row[6:] == ["8", "0" if rank < 8 else "1"]
    assert ex.log_paths(1, 1) == ex.rank_log_paths(1, 1, 0)
    # Torn down (on the executor's worker thread: drain() waits for it): no actor or
    # placement group of the run is left.
    assert ex.drain(30)
    assert [n for n in ray.util.list_named_actors() if n.startswith("cortex-1-1")] == []
    assert ex.live_handles() == []
    with pytest.raises(ValueError, match="already launched"):
        ex.launch(spec(1, REPORT))


def test_a_failing_rank_fails_the_gang_and_stops_the_other_node(ex: RayExecutor) -> None:
    # 4 ranks over 8 + 8 devices: 0-1 on node-a, 2-3 on node-b. Rank 3 exits 7; the others
    # would sleep for 10 minutes unless stopped.
    code = "import os, sys, time; sys.exit(7) if os.environ['RANK'] == '3' else time.sleep(600)"
    ex.launch(spec(2, code, nprocs=4))
    # Ends within ended()'s 90 s, so the 600 s sleepers on both nodes were stopped.
    rec = ended(ex)
    assert (rec.outcome, rec.exit_code) == ("failed", 7), rec
    assert rec.detail == "node node-b: rank 3 exited with code 7; stopped the other ranks"


def test_exit_75_from_every_rank_is_preempted(ex: RayExecutor) -> None:
    ex.launch(spec(3, "import sys; sys.exit(75)", nprocs=2))
    rec = ended(ex)
    assert (rec.outcome, rec.exit_code) == ("preempted", 75), rec


def test_preempt_sigterms_every_rank_which_checkpoints(ex: RayExecutor) -> None:
    ex.launch(spec(4, CHECKPOINTING, nprocs=4))
    up(ex, 4, 4)  # every rank has its handler before the stop, so each one exits 75
    assert ex.terminate(4, 1, "preempt") is True
    rec = ended(ex)
    assert (rec.outcome, rec.exit_code) == ("preempted", 75), rec
    assert rec.detail.startswith("preempt requested")
    assert ex.terminate(4, 1, "preempt") is False  # reported: nothing left to stop


def test_a_rank_ignoring_sigterm_is_killed_after_the_grace_period(ex: RayExecutor) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(600)"
    )
    ex.launch(spec(5, code, nprocs=2))
    up(ex, 5, 2)
    ex.terminate(5, 1, "cancel", grace_s=1.0)
    rec = ended(ex)
    # Killed by the agents' SIGKILL after 1 s: no exit code; a cancel stays a cancel.
    assert (rec.outcome, rec.exit_code) == ("cancelled", None), rec
    assert "SIGKILL" in rec.detail or "killed" in rec.detail


def test_unsatisfiable_placement_is_removed_and_reported(ex: RayExecutor) -> None:
    short = RayExecutor(ex.root, None, pg_timeout_s=3.0)  # already connected: joins it
    # node-c does not exist: Ray would leave this placement group pending forever.
    short.launch(spec(6, REPORT, nodes=(("node-c", (0, 1)),), nprocs=2))
    rec = ended(short)
    assert rec.outcome == "failed" and rec.exit_code is None
    assert "placement group not created within 3 s on node-c" in rec.detail
    assert short.drain(30)
    states = {v["name"]: v["state"] for v in ray.util.placement_group_table().values()}
    assert states["cortex-6-1"] == "REMOVED"


def test_a_new_executor_adopts_a_running_gang(
    ex: RayExecutor, cluster: LoopbackCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ex.launch(spec(7, CHECKPOINTING, nprocs=4))
    up(ex, 7, 4)
    # A restarted service: a new executor on the same run root, knowing nothing in memory.
    again = RayExecutor(ex.root, cluster.address, grace_s=2.0, pg_timeout_s=60.0)
    live = again.live_handles()
    assert [(h.job_id, h.attempt) for h in live] == [(7, 1)]
    assert again.find_run(7, 1) == live[0]
    with pytest.raises(ValueError, match="already launched"):
        again.launch(spec(7, CHECKPOINTING, nprocs=4))  # never the same attempt twice
    assert again.adopt(live[0]) is True
    ex._gangs.clear()  # the old service is gone
    assert again.terminate(7, 1, "preempt") is True
    rec = ended(again)
    assert (rec.outcome, rec.exit_code) == ("preempted", 75), rec
    assert again.drain(30)
    assert again.live_handles() == []
    # Adopted once more (a service that died before committing that exit): the verdicts the
    # agents left in the run dir say how it ended, and it is reported again, the same.
    assert again.adopt(live[0]) is True
    assert ended(again) == rec


def test_a_cancel_right_after_launch_starts_no_rank_and_leaves_nothing(
    ex: RayExecutor,
) -> None:
    # launch() returns before Ray is asked anything (the worker thread creates the gang), so
    # this cancel arrives while the launch is queued or being created.
    ex.launch(spec(13, REPORT, nprocs=2))  # a rank that ran would print a line
    assert ex.terminate(13, 1, "cancel") is True
    rec = ended(ex)
    assert (rec.outcome, rec.exit_code) == ("cancelled", None), rec
    assert rec.detail == "cancel requested; stopped before the job started"
    assert ex.drain(30)
    assert [h for h in ex.live_handles() if h.job_id == 13] == []
    assert all(ex.rank_log_paths(13, 1, r)[0].read_text() == "" for r in range(2))


def test_kill_removes_a_gang_without_a_record(ex: RayExecutor) -> None:
    h = ex.launch(spec(8, CHECKPOINTING, nprocs=2))
    up(ex, 8, 2)
    ex.kill(h)
    assert ex.poll() == []
    wait_for(lambda: ex.live_handles() == [], 90)


def test_an_unreachable_cluster_serves_the_last_fleet_down_and_checks_adoptions_later(
    ex: RayExecutor, cluster: LoopbackCluster
) -> None:
    ex.discover()  # saves the fleet in the run root
    h = ex.launch(spec(11, CHECKPOINTING, nprocs=2))
    up(ex, 11, 2)
    ex._gangs.clear()  # the service that started it is gone
    # A restart that cannot reach the cluster (nothing listens at this address).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    off = RayExecutor(ex.root, dead, grace_s=2.0, connect=False)
    fleet = off.start_offline()
    assert fleet is not None and fleet.names == ["node-a", "node-b"]
    assert all(not n.alive for n in fleet.nodes)
    # Down for the loop too (found by review: reported nothing, so the loop placed jobs on
    # them and every launch failed against the jobs' retries).
    assert sorted(off.node_changes()) == [("node-a", False), ("node-b", False)]
    assert off.poll() == [] and off.node_changes() == [] and off.live_handles() == []
    with pytest.raises(ConnectionError, match="not connected"):
        off.launch(spec(12, REPORT))
    assert off.adopt(h) is True  # on trust: requeuing it now could run it twice
    # The cluster answers again (here: at the address it really has).
    off.address = cluster.address
    off._backoff.next_at = 0.0
    # Joined on a thread (ray.init never runs in the tick): connected a few polls later.
    wait_for(lambda: off.poll() == [] and off.connected, 30, 0.05)
    changes: list[tuple[str, bool]] = []
    wait_for(lambda: changes.extend(off.node_changes(force=True)) or changes, 60, 0.2)
    assert sorted(changes) == [("node-a", True), ("node-b", True)]
    assert off.terminate(11, 1, "preempt") is True  # the adopted gang was found running
    rec = ended(off)
    assert (rec.outcome, rec.exit_code) == ("preempted", 75), rec


def _failed_rank_log(ex: RayExecutor, rec: ExitRecord) -> str:
    """The stderr tail of the rank a failed gang names (CI once saw a rank killed by SIGABRT,
    with nothing else to go on)."""
    found = re.search(r"rank (\d+)", rec.detail or "")
    if found is None:
        return ""
    err = ex.rank_log_paths(rec.job_id, rec.attempt, int(found.group(1)))[1]
    return err.read_text(errors="replace")[-3000:] if err.exists() else f"{err}: no log"


def test_sixteen_ranks_train_fsd_with_ddp_on_gloo_across_two_nodes(ex: RayExecutor) -> None:
    pytest.importorskip("torch", reason="the train extra (torch) is not installed")
    import json

    # Each rank says where it runs, then becomes the tiny fsd workload (DDP over gloo: the
    # CPU build sees no CUDA, whatever CUDA_VISIBLE_DEVICES the node's bundle has).
    train = (
        'echo "rank=$RANK node=$CORTEX_NODE local=$LOCAL_RANK"; exec "$0" -m cortex.training.fsd '
        "--config tiny --steps 4 --log-every 2 --checkpoint-every 2 --num-workers 0 --device cpu"
    )
    ex.launch(dataclasses.replace(spec(10, ""), command=["sh", "-c", train, sys.executable]))
    rec = ended(ex, 600)
    assert (rec.outcome, rec.exit_code) == ("completed", 0), (rec, _failed_rank_log(ex, rec))
    for rank in range(16):
        first = ex.rank_log_paths(10, 1, rank)[0].read_text().splitlines()[0]
        # The placement: ranks 0-7 on node-a, 8-15 on node-b, LOCAL_RANK within the node.
        node = "node-a" if rank < 8 else "node-b"
        assert first == f"rank={rank} node={node} local={rank % 8}", first
    lines = [json.loads(x) for x in ex.metrics_file(10).read_text().splitlines() if x.strip()]
    steps = [d for d in lines if "loss" in d]
    assert [d["world_size"] for d in steps] == [16, 16]
    assert steps[-1]["samples_seen"] == 4 * 16 * 8  # steps x ranks x per-rank batch (tiny: 8)
    assert (ex.checkpoint_dir(10) / "ckpt-00000004.pt").exists()


def test_node_loss_fails_the_gang_naming_the_node(
    ex: RayExecutor, cluster: LoopbackCluster
) -> None:
    ex.discover()
    ex.launch(spec(9, CHECKPOINTING, nprocs=4))
    up(ex, 9, 4)
    cluster.kill("node-b")
    rec = ended(ex, 120)
    assert rec.outcome == "failed" and rec.exit_code is None
    assert "node node-b lost" in rec.detail, rec
    changes: list[tuple[str, bool]] = []
    wait_for(lambda: changes.extend(ex.node_changes(force=True)) or changes, 90, 0.2)
    assert changes == [("node-b", False)]
    cluster.add("node-b", **{"cortex.pod": "p1", "cortex.rack": "r2"})  # the machine rejoins
    wait_for(lambda: changes.extend(ex.node_changes(force=True)) or len(changes) > 1, 120, 0.2)
    assert changes == [("node-b", False), ("node-b", True)]
