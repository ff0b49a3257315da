"""The mirror's by-job device index (`held`) stays the inverse of `owner` through claims,
recovery's take-backs (which may name a device twice) and releases: the loop publishes it as
the running jobs' devices, and the API, DCGM metrics and power books read it."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from cortex.control.fleet import local_fleet, queues_spec
from cortex.control.mirror import Mirror
from cortex.fleet.topology import build
from cortex.scheduler.queues import QueueConfig

DEVICES = 8


def mirror() -> Mirror:
    topo = build(local_fleet("H100-SXM5", DEVICES, "n"))
    queues = QueueConfig.build(queues_spec([], 0.0), topo)
    return Mirror(topo, [list(range(DEVICES))], queues, ordering_key=lambda j: j.id)


def from_owner(owner: dict[int, int]) -> dict[int, tuple[int, ...]]:
    out: dict[int, list[int]] = {}
    for d, j in owner.items():
        out.setdefault(j, []).append(d)
    return {j: tuple(sorted(ds)) for j, ds in out.items()}


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("take"),
            st.integers(1, 4),
            st.lists(st.integers(0, DEVICES - 1), max_size=4, unique=True),
        ),
        st.tuples(st.just("release"), st.integers(1, 4), st.just([])),
    ),
    max_size=30,
)


@given(ops)
def test_the_index_by_job_is_the_inverse_of_owner(steps: list[tuple[str, int, list[int]]]) -> None:
    mi = mirror()
    for op, jid, devices in steps:
        if op == "take":
            mi.take_back(SimpleNamespace(id=jid), 1, len(devices), devices, exiting=True)  # type: ignore[arg-type]
        else:
            mi.release(jid)
        assert mi.devices_by_job() == from_owner(mi.owner)


def test_a_device_named_by_two_recovered_runs_is_the_later_ones() -> None:
    mi = mirror()
    mi.take_back(SimpleNamespace(id=1), 1, 2, [0, 1], exiting=True)  # type: ignore[arg-type]
    mi.take_back(SimpleNamespace(id=2), 1, 2, [1, 2], exiting=True)  # type: ignore[arg-type]
    assert mi.devices_by_job() == {1: (0,), 2: (1, 2)}
    mi.release(1)  # must not free device 1, which job 2 holds now
    assert mi.owner == {1: 2, 2: 2}
    mi.release(2)
    assert mi.owner == {} and mi.devices_by_job() == {}
