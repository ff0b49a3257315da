"""Invariants the twin checks after every event in debug mode (tests switch it on). Each is a
full scan, so debug mode is for small fleets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cortex.drive import protection
from cortex.workload.states import JobState

if TYPE_CHECKING:
    from cortex.sim.twin import Twin


class InvariantError(AssertionError):
    """The twin's state broke a rule that must always hold."""


def check_invariants(twin: Twin) -> None:
    """Raise InvariantError on the first broken invariant."""
    st = twin.state
    gpn = st.gpn
    held: dict[int, int] = {}
    for n, jobs in enumerate(st.node_jobs):
        g = gpn[st.node_flavor[n]]
        used = sum(jobs.values())
        if not st.node_up[n] and jobs:
            raise InvariantError(f"node {n} is down but runs jobs {list(jobs)}")
        if st.node_up[n] and used + st.node_free[n] + st.cordoned.get(n, 0) != g:
            raise InvariantError(f"node {n}: {used} used + {st.node_free[n]} free != {g}")
        for j, k in jobs.items():
            held[j] = held.get(j, 0) + k
    for j, alloc in st.allocations.items():
        job = st.running.get(j)
        if job is None or job.state is not JobState.RUNNING:
            raise InvariantError(f"allocation of job {j} that is not running")
        if held.get(j) != alloc.gpus or alloc.gpus < job.run_gpus:
            raise InvariantError(
                f"job {j}: gang {job.run_gpus} holds {held.get(j)} of {alloc.gpus}"
            )
        if any(st.node_flavor[n] != alloc.flavor for n, _ in alloc.placement):
            raise InvariantError(f"job {j} spans flavors")
    if set(held) != set(st.running):
        raise InvariantError("running set and node allocations disagree")
    _check_indices(twin)
    _check_power(twin)
    _check_protection(twin)
    nf = len(gpn)
    for f in range(nf):
        free = sum(
            st.node_free[n]
            for n in range(len(st.node_free))
            if st.node_up[n] and st.node_flavor[n] == f
        )
        if free != st.free_gpus[f]:
            raise InvariantError(f"flavor {f}: free counter {st.free_gpus[f]} != {free}")
        usage = [0] * len(st.queues.queues)
        for rj in st.running.values():
            if rj.run_flavor == f:
                usage[rj.queue_idx] += rj.alloc_gpus
        for q in st.queues.queues:
            if usage[q.index] != st.usage[q.index][f]:
                raise InvariantError(f"queue {q.name}: usage counter disagrees")
            limit = q.borrowing_limit[f]
            if limit is not None and usage[q.index] > q.nominal[f] + limit:
                raise InvariantError(f"queue {q.name} exceeds its borrowing limit on flavor {f}")
        if sum(usage) > st.queues.cohort_nominal[f]:
            raise InvariantError(f"cohort exceeds its quota on flavor {f}")
    for job in st.running.values():
        if job.done_s > job.work_s + 1e-6:
            raise InvariantError(f"job {job.id} did more work than it has")
    for job in twin.pending:
        if job.state not in (JobState.QUEUED, JobState.REQUEUED) or job.id in st.allocations:
            raise InvariantError(f"pending job {job.id} in state {job.state.value}")
    for job in twin.waiting.values():  # out of the queues until their retry backoff is over
        if job.state is not JobState.REQUEUED or job.id in st.allocations:
            raise InvariantError(f"job {job.id} waits out a retry in state {job.state.value}")
    for job in twin.failed:
        if job.state is not JobState.FAILED or job.id in twin.waiting:
            raise InvariantError(f"job {job.id} failed for good in state {job.state.value}")


def _check_indices(twin: Twin) -> None:
    """The bucketed free-capacity indices and the per-node summaries agree with node_free,
    node_up and node_jobs: these are what placement and victim search read."""
    st = twin.state
    topo = st.topo
    nf = len(st.gpn)
    whole_in_pod = [0] * topo.n_pods
    hall = [[0] * nf for _ in topo.hall_names]
    partial = [0] * nf
    for n, f in enumerate(topo.node_flavor):
        used = sum(st.node_jobs[n].values())
        if int(st.np_used[n]) != used:
            raise InvariantError(
                f"node {n}: summary says {int(st.np_used[n])} GPUs used, not {used}"
            )
        if not st.node_up[n]:
            continue
        free, g, p = st.node_free[n], st.gpn[f], topo.node_pod[n]
        if free == g:
            whole_in_pod[p] += 1
            hall[topo.node_hall[n]][f] += 1
            if n not in st.pod_whole[p]:
                raise InvariantError(f"free node {n} missing from pod {p}'s whole set")
        elif free:
            partial[f] += 1
            if n not in st.part[f][free]:
                raise InvariantError(f"node {n} with {free} free missing from its bucket")
    for f in range(nf):
        if sum(len(b) for b in st.part[f]) != partial[f]:
            raise InvariantError(f"flavor {f}: partial-node buckets hold stale nodes")
        if sum(len(b) for b in st.pod_bucket[f]) != sum(
            1 for p, c in enumerate(whole_in_pod) if c and topo.pod_flavor[p] == f
        ):
            raise InvariantError(f"flavor {f}: pod buckets hold stale pods")
    for p, c in enumerate(whole_in_pod):
        if len(st.pod_whole[p]) != c or (c and p not in st.pod_bucket[topo.pod_flavor[p]][c]):
            raise InvariantError(f"pod {p}: {c} whole free nodes, indices disagree")
    if hall != st.hall_whole:
        raise InvariantError("hall whole-node counts disagree")


def _check_protection(twin: Twin) -> None:
    """The heap of protected runs (kept at each start) lists what a scan of the running jobs
    finds: a start that bypassed it would retry failed searches late."""
    kept = [(t, j.id) for t, j in twin._protection.protected(twin.now)]
    scan = protection.protected(twin.state.running.values(), twin.queues, twin.now)
    if kept != [(t, j.id) for t, j in scan]:
        raise InvariantError(f"protected runs: heap {kept} != scan {[(t, j.id) for t, j in scan]}")


def _check_power(twin: Twin) -> None:
    """Under an enforcing power policy, no cap is crossed: site (facility), hall (IT and heat)
    and rack (IT); the books match the running set."""
    pw = twin.pw
    if pw is None:
        return
    st = twin.state
    if set(pw.jobs) != set(st.running):
        raise InvariantError("power books and running set disagree")
    inc = sum(jp.inc_w for jp in pw.jobs.values())
    if abs(inc - pw.inc_total_w) > 1e-6 * max(1.0, inc):
        raise InvariantError(f"power increment total {pw.inc_total_w} != {inc}")
    actual = sum(jp.actual_w for jp in pw.jobs.values())
    if abs(actual - pw.actual_total_w) > 1e-6 * max(1.0, actual):
        raise InvariantError(f"power drawn total {pw.actual_total_w} != {actual}")
    for h in range(len(pw.hall_actual_w)):
        hall = sum(jp.actual_w * jp.halls.get(h, 0.0) for jp in pw.jobs.values())
        if abs(hall - pw.hall_actual_w[h]) > 1e-6 * max(1.0, hall):
            raise InvariantError(f"hall {h} power drawn {pw.hall_actual_w[h]} != {hall}")
    for jid, jp in pw.jobs.items():
        if jp.waves_done == jp.waves and abs(jp.actual_w - jp.inc_w) > 1e-6 * max(1.0, jp.inc_w):
            raise InvariantError(f"job {jid}: all waves up but draws {jp.actual_w} of {jp.inc_w}")
    if pw.policy is None:
        return
    now = twin.now
    facility = pw.facility_w(pw.it_w(st), now)
    cap = pw.cap_w(now)
    if facility > cap * (1 + 1e-9):
        raise InvariantError(f"facility {facility / 1e6:.4f} MW over the {cap / 1e6:.4f} MW cap")
    budget = pw.hall_budget_w(now)
    for h, w in enumerate(pw.hall_actual_w):
        if w > budget[h] + 1e-6 * max(1.0, abs(budget[h])):
            raise InvariantError(f"hall {h}: IT over its power or cooling limit")
    if pw.cfg.rack_cap_kw is not None:
        topo = twin.topo
        rack_w: dict[int, float] = {}
        for n, up in enumerate(st.node_up):
            if up:
                r = topo.node_rack[n]
                rack_w[r] = rack_w.get(r, 0.0) + pw.node_base_w[n]
        for jid, jp in pw.jobs.items():
            alloc = st.allocations[jid]
            for n, k in alloc.placement:
                r = topo.node_rack[n]
                rack_w[r] = rack_w.get(r, 0.0) + jp.actual_w * k / alloc.gpus
        limit = pw.cfg.rack_cap_kw * 1e3
        for r, w in rack_w.items():
            if w > limit * (1 + 1e-9):
                raise InvariantError(f"rack {r}: {w / 1e3:.2f} kW over {limit / 1e3:.2f} kW")
