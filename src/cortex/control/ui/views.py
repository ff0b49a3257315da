"""What the dashboard's pages show, computed from the loop's published state and the store.

Reads happen on request threads while the scheduler thread changes the mirror: every list or
set of the mirror is copied whole first (`list(x)`, `set(x)`: one C call under the GIL, so a
consistent copy), and nothing here ever writes to the mirror or waits for a tick."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cortex.control import store_ui
from cortex.control.auth import Principal
from cortex.workload.states import PENDING

# One byte per node in the heatmap snapshot; static/heatmap.js holds the matching colors.
IDLE, PARTIAL, FULL, DOWN, CORDONED = 0, 1, 2, 3, 4
STATE_NAMES = ("idle", "partly used", "full", "down", "cordoned")
INCIDENT_WINDOW_S = 3600.0  # "open incidents": those of the last hour


def node_states(loop: Any) -> np.ndarray:
    """The heatmap snapshot: one uint8 per node, in topology order (hall, pod, rack, node)."""
    st = loop.mirror.state
    free = np.array(list(st.node_free), dtype=np.int32)
    up = np.array(list(st.node_up), dtype=bool)
    gpn = np.asarray(st.gpn, dtype=np.int32)[np.asarray(st.node_flavor, dtype=np.int64)]
    out = np.where(free >= gpn, IDLE, np.where(free <= 0, FULL, PARTIAL)).astype(np.uint8)
    if not loop.schedulable:  # the service-wide cordon: nothing new starts anywhere
        out[out != FULL] = CORDONED
    down = list(set(loop.nodes_down))
    out[~up] = DOWN
    if down:
        out[np.asarray(down, dtype=np.int64)] = DOWN
    return out


def display_order(topo: Any) -> np.ndarray | None:
    """The heatmap's cell order, position -> node index: by hall, pod and rack, then index; None
    when that is the node order already (the common case: a fleet file's nodes are cut into
    pods in order). A node that joins later (the Ray executor's, with a pod label) takes the
    next index, after other pods' nodes; drawn in index order its pod would show as two blocks."""
    idx = np.arange(topo.n_nodes, dtype=np.int64)
    keys = (idx, np.asarray(topo.node_rack), np.asarray(topo.node_pod), np.asarray(topo.node_hall))
    order = np.lexsort(keys)
    return None if bool((order == idx).all()) else order


USED_MAX = 200  # "used" snapshot: share of a node's GPUs in use, 0..200
USED_DOWN = 255  # "used" snapshot: the node is down


def node_used(loop: Any) -> np.ndarray:
    """The heatmap's other snapshot: per node, the share of its GPUs in use scaled to
    0..USED_MAX (rounded), USED_DOWN for a node that is down."""
    st = loop.mirror.state
    free = np.array(list(st.node_free), dtype=np.int64)
    gpn = np.asarray(st.gpn, dtype=np.int64)[np.asarray(st.node_flavor, dtype=np.int64)]
    out = np.rint((gpn - free) * USED_MAX / gpn).astype(np.uint8)
    out[node_states(loop) == DOWN] = USED_DOWN
    return out


@dataclass
class Overview:
    gpus_total: int
    gpus_by_state: dict[str, int]
    nodes_by_state: dict[str, int]
    power: dict[str, float] | None  # facility_w, cap_w; None without a power policy
    pending_gpu_h: float  # the caller's (every team's for the admin)
    fleet_pending_gpu_h: float
    jobs: dict[str, int]  # the caller's jobs by state
    fleet_running: int
    fleet_waiting: int
    incidents_open: int
    as_of: float
    flavors: list[str] = field(default_factory=list)


def overview(svc: Any, who: Principal, s: Any) -> Overview:
    loop = svc.loop
    states = node_states(loop)
    st = loop.mirror.state
    gpn = np.asarray(st.gpn, dtype=np.int64)[np.asarray(st.node_flavor, dtype=np.int64)]
    free = np.array(list(st.node_free), dtype=np.int64)
    gpus = dict.fromkeys(("busy", "idle", "down", "cordoned"), 0)
    live = (states != DOWN) & (states != CORDONED)
    gpus["busy"] = int((gpn - free)[states != DOWN].sum())
    gpus["idle"] = int(free[live].sum())
    gpus["down"] = int(gpn[states == DOWN].sum())
    gpus["cordoned"] = int(free[states == CORDONED].sum())
    counts = np.bincount(states, minlength=len(STATE_NAMES))
    team = None if who.admin else who.team
    mine = fleet = 0.0
    running = waiting = 0
    for job in list(loop.mirror.jobs.values()):
        if job.state in PENDING:
            gpu_h = job.gpus * job.remaining_s / 3600.0
            fleet += gpu_h
            waiting += 1
            if team is None or job.team == team:
                mine += gpu_h
        elif job.id in loop.view.devices:
            running += 1
    now = svc.clock.time()
    return Overview(
        gpus_total=int(gpn.sum()),
        gpus_by_state=gpus,
        nodes_by_state={STATE_NAMES[i]: int(counts[i]) for i in range(len(STATE_NAMES))},
        power=_power(loop),
        pending_gpu_h=mine,
        fleet_pending_gpu_h=fleet,
        jobs=store_ui.jobs_by_state(s, team),
        fleet_running=running,
        fleet_waiting=waiting,
        incidents_open=store_ui.count_incidents(s, team, now - INCIDENT_WINDOW_S),
        as_of=now,
        flavors=list(loop.topo.flavors),
    )


def _power(loop: Any) -> dict[str, float] | None:
    if loop.power is None:
        return None
    rep = loop.power.report()
    return {"facility_w": rep.facility_w, "cap_w": rep.site_cap_w}


@dataclass
class QuotaRow:
    queue: str
    guaranteed: int
    limit: int | None  # borrowing limit (GPUs); None: unlimited
    used: int
    borrowed: int
    lent: int
    preemptible: int
    pending: int


def quotas(svc: Any, who: Principal, s: Any) -> tuple[list[QuotaRow], QuotaRow | None]:
    """One row per queue in name order (stable across refreshes). A team gets its own row and
    the rest of the fleet summed in a second row, never another team's by name.

    Lent: the part of a queue's idle guarantee that other queues' borrowing uses. The cohort
    owns the whole fleet, so borrowing is served first from capacity no queue is guaranteed;
    the rest comes out of idle guarantees, apportioned to their size."""
    qc = svc.loop.mirror.queues  # replaced whole by the loop, never mutated
    usage = svc.loop.usage()
    classes = qc.priority_classes
    normal = classes.get("normal", max(classes.values(), default=0))
    low = [c for c, v in classes.items() if v < normal]
    preempt = store_ui.running_preemptible_gpus(s, low)
    rows = []
    for q in qc.queues:
        used, pending = usage.get(q.name, (0, 0))
        nom = sum(q.nominal)
        lims = [x for x in q.borrowing_limit if x is not None]
        lim = sum(lims) if len(lims) == len(q.borrowing_limit) else None
        rows.append(
            QuotaRow(
                queue=q.name,
                guaranteed=nom,
                limit=lim,
                used=used,
                borrowed=max(0, used - nom),
                lent=0,
                preemptible=preempt.get(q.name, 0),
                pending=pending,
            )
        )
    unassigned = max(0, sum(qc.cohort_nominal) - sum(r.guaranteed for r in rows))
    from_idle = max(0, sum(r.borrowed for r in rows) - unassigned)
    idle = {r.queue: max(0, r.guaranteed - r.used) for r in rows}
    pool = sum(idle.values())
    for r in rows:
        if pool > 0 and from_idle > 0:
            r.lent = round(idle[r.queue] * min(1.0, from_idle / pool))
    rows.sort(key=lambda r: r.queue)
    if who.admin:
        return rows, None
    own = [r for r in rows if r.queue == who.team]
    others = [r for r in rows if r.queue != who.team]
    rest = QuotaRow(
        queue="(other teams)",
        guaranteed=sum(r.guaranteed for r in others),
        limit=None,
        used=sum(r.used for r in others),
        borrowed=sum(r.borrowed for r in others),
        lent=sum(r.lent for r in others),
        preemptible=sum(r.preemptible for r in others),
        pending=sum(r.pending for r in others),
    )
    return own, rest


OTHERS = "(other teams)"


def quota_history(svc: Any, who: Principal, s: Any, hours: float, points: int) -> dict[str, Any]:
    """GPUs each team held at `points` evenly spaced times over the last `hours`, from the
    allocation rows (the store's record of who held what, when). A team gets its own series
    and the other teams' summed in one, never another team by name."""
    now = svc.clock.time()
    since = now - hours * 3600.0
    rows = store_ui.allocations_between(s, since, now)
    t = np.linspace(since, now, points)
    series: dict[str, np.ndarray] = {}
    if rows:
        teams = [r[0] if who.admin or r[0] == who.team else OTHERS for r in rows]
        gpus = np.array([r[1] for r in rows], dtype=np.int64)
        start = np.array([r[2] for r in rows])
        end = np.array([np.inf if r[3] is None else r[3] for r in rows])
        held = (start[:, None] <= t[None, :]) & (t[None, :] < end[:, None])  # rows x points
        for name in sorted(set(teams)):
            mask = np.array([x == name for x in teams])
            series[name] = (gpus[mask, None] * held[mask]).sum(axis=0)
    if not who.admin and who.team is not None:
        series.setdefault(who.team, np.zeros(points, dtype=np.int64))
    return {
        "t": [round(float(x), 1) for x in t],
        "series": {k: [int(v) for v in series[k]] for k in sorted(series, key=_own_first(who))},
    }


def _own_first(who: Principal) -> Any:
    return lambda name: (name != who.team, name == OTHERS, name)


def timeline(
    svc: Any, who: Principal, s: Any, hours: float, limit: int, by: str = "team"
) -> dict[str, Any]:
    """The Gantt view's data: the caller's jobs (every team's for the admin) that held GPUs in
    the last `hours`, newest `limit`, grouped in lanes by team; each with its runs and its
    preemption and failure marks. Times in seconds since the epoch."""
    now = svc.clock.time()
    since = now - hours * 3600.0
    team = None if who.admin else who.team
    runs, marks = store_ui.runs_between(s, team, since, now, limit)
    jobs: dict[int, dict[str, Any]] = {}
    for jid, t, name, gpus, a, b in runs:
        j = jobs.setdefault(
            jid, {"id": jid, "team": t, "name": name, "gpus": gpus, "runs": [], "marks": []}
        )
        j["runs"].append([a, b])
    for jid, at, what in marks:
        if jid in jobs:
            jobs[jid]["marks"].append([at, what])
    if by == "pod":
        pods = _pods_of(svc.loop, store_ui.last_devices(s, list(jobs)))
        for jid, j in jobs.items():
            j["pod"] = pods.get(jid)
        ordered = sorted(jobs.values(), key=lambda j: (j["pod"] is None, j["pod"] or 0, j["id"]))
    else:
        ordered = sorted(jobs.values(), key=lambda j: (j["team"], j["id"]))
    return {
        "since": since,
        "now": now,
        "by": by,
        "teams": sorted({j["team"] for j in ordered}),
        "jobs": ordered,
    }


_device_pod: dict[int, tuple[Any, int, dict[int, int]]] = {}


def _pods_of(loop: Any, devices: dict[int, list[int]]) -> dict[int, int]:
    """Job -> the pod of its first device (a gang spans pods only when no pod could hold it).
    The device -> pod map is built once per fleet, again when its node list is replaced or
    grows (nodes join at the end)."""
    nd = loop.mirror.node_devices
    got = _device_pod.get(id(loop))
    if got is None or got[0] is not nd or got[1] != len(nd):
        pod = loop.topo.node_pod
        nodes = list(nd)
        got = (nd, len(nodes), {d: pod[n] for n, ds in enumerate(nodes) for d in ds})
        _device_pod[id(loop)] = got
    where = got[2]
    return {j: where[ds[0]] for j, ds in devices.items() if ds and ds[0] in where}
