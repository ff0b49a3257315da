"""Per-flavor queue quotas through the control plane (issue 12: "per-cluster-queue flavor
quotas ... which the control plane accepts too"): PUT /v1/queues/{name} takes a fleet file's
`flavor_quotas`, the store keeps them, the scheduler's quota check uses them, and bad values
get a 422 naming the field with nothing written. The fake service's fleet is one node of 4
CPU-SLOT slots."""

from __future__ import annotations

import threading
from collections.abc import Callable
from math import nan
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, job_body
from sqlalchemy import update

from cortex.control import models as m
from cortex.control.service import Service, repair_queues

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
SLOT = "CPU-SLOT"


def team(client: TestClient, name: str) -> dict[str, str]:
    r = client.post("/v1/tokens", json={"team": name}, headers=ADMIN_H)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def put(client: TestClient, name: str, body: dict[str, Any]) -> Any:
    return client.put(f"/v1/queues/{name}", json=body, headers=ADMIN_H)


def stored(svc: Service) -> dict[str, Any]:
    with svc.sessions() as s:
        return {q.name: q.flavor_quotas for q in s.query(m.Queue).all()}


def test_a_flavor_quota_reaches_the_scheduler_and_caps_the_team(
    client: TestClient, svc: Service
) -> None:
    fsd = team(client, "fsd")
    one = {SLOT: {"nominal_gpus": 1, "borrowing_limit_gpus": 0}}
    r = put(client, "fsd", {"flavor_quotas": one})
    assert r.status_code == 200, r.text
    assert r.json()["flavor_quotas"] == one
    assert client.get("/v1/queues", headers=fsd).json()[0]["flavor_quotas"] == one
    ids = [client.post("/v1/jobs", json=job_body(), headers=fsd).json()["id"] for _ in range(2)]
    svc.loop.tick()
    q = svc.loop.mirror.queues.queues[0]
    assert (q.name, q.nominal, q.borrowing_limit) == ("fsd", (1,), (0,))
    # Without the quota both one-slot jobs would run on the 4 free slots; with it one waits.
    states = [client.get(f"/v1/jobs/{i}", headers=fsd).json()["state"] for i in ids]
    assert sorted(states) == ["queued", "running"]
    # A share form: 0.5 of 4 slots = 2 nominal, borrowing up to 0.25 of 4 = 1 more.
    body = {SLOT: {"nominal_share": 0.5, "borrowing_limit_share": 0.25}}
    assert put(client, "fsd", {"flavor_quotas": body}).status_code == 200
    svc.loop.tick()
    q = svc.loop.mirror.queues.queues[0]
    assert (q.nominal, q.borrowing_limit) == ((2,), (1,))
    # Another field's edit keeps the quotas; null clears them back to the queue's shares.
    assert put(client, "fsd", {"weight": 2}).status_code == 200
    assert stored(svc)["fsd"] == body
    assert put(client, "fsd", {"flavor_quotas": None}).json()["flavor_quotas"] == {}
    svc.loop.tick()
    assert stored(svc)["fsd"] is None
    assert svc.loop.mirror.queues.queues[0].nominal == (0,)  # nominal_share 0 of 4


@pytest.mark.parametrize(
    ("quotas", "loc"),
    [
        ({"H100-SXM5": {"nominal_gpus": 1}}, ["body", "flavor_quotas", "H100-SXM5"]),
        ({SLOT: {"nominal_share": 0.5, "nominal_gpus": 1}}, ["body", "flavor_quotas", SLOT]),
        ({SLOT: {"nominal_share": 1.5}}, ["body", "flavor_quotas", SLOT, "nominal_share"]),
        ({SLOT: {"borrowing_limit_share": 2}}, None),
        ({SLOT: {"nominal_gpus": -1}}, ["body", "flavor_quotas", SLOT, "nominal_gpus"]),
        ({SLOT: {"nominal_gpus": True}}, ["body", "flavor_quotas", SLOT, "nominal_gpus"]),
        ({SLOT: {"nominal_gpus": "3"}}, ["body", "flavor_quotas", SLOT, "nominal_gpus"]),
        ({SLOT: {"nominal_gpus": 2**31}}, ["body", "flavor_quotas", SLOT, "nominal_gpus"]),
        ({SLOT: {"nominal_gpus": 5}}, ["body", "flavor_quotas"]),  # 5 of 4 slots
        ({SLOT: {"guaranteed": 1}}, ["body", "flavor_quotas", SLOT, "guaranteed"]),
        ({SLOT: 3}, ["body", "flavor_quotas", SLOT]),
        ({"": {"nominal_gpus": 1}}, ["body", "flavor_quotas", ""]),
        ({f"F{i}": {} for i in range(65)}, ["body", "flavor_quotas"]),
    ],
)
def test_bad_flavor_quotas_name_the_field_and_write_nothing(
    client: TestClient, svc: Service, quotas: dict[str, Any], loc: list[str] | None
) -> None:
    team(client, "fsd")
    before = put(client, "fsd", {"flavor_quotas": {SLOT: {"nominal_gpus": 2}}}).json()
    r = put(client, "fsd", {"flavor_quotas": quotas, "weight": 3})
    assert r.status_code == 422, r.text
    got = r.json()["detail"][0]["loc"]
    if loc is None:  # the borrowing share's bound: the field, whatever pydantic adds after it
        loc = ["body", "flavor_quotas", SLOT, "borrowing_limit_share"]
    assert got[: len(loc)] == loc, got
    after = client.get("/v1/queues", headers=ADMIN_H).json()[0]
    assert after == before  # neither the quotas nor the weight of the same request changed
    assert stored(svc)["fsd"] == {SLOT: {"nominal_gpus": 2}}


def test_quotas_of_two_queues_may_not_overfill_a_flavor(client: TestClient, svc: Service) -> None:
    team(client, "fsd")
    team(client, "optimus")
    assert put(client, "fsd", {"flavor_quotas": {SLOT: {"nominal_gpus": 3}}}).status_code == 200
    # 3 + 2 of 4 slots: the second queue's edit is refused, the first keeps its quota.
    r = put(client, "optimus", {"flavor_quotas": {SLOT: {"nominal_gpus": 2}}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "flavor_quotas"]
    assert "1.250" in r.json()["detail"][0]["msg"]
    # A plain share edit counts too: optimus's 0.5 of the slots on top of fsd's 3 of 4. The
    # queues' shares alone sum to 0.5, which the old share check let through.
    r = put(client, "optimus", {"nominal_share": 0.5})
    assert r.status_code == 422, r.text
    assert put(client, "optimus", {"nominal_share": 0.25}).status_code == 200
    assert stored(svc) == {"fsd": {SLOT: {"nominal_gpus": 3}}, "optimus": None}


def test_a_hand_broken_flavor_quota_is_repaired_after_the_failed_tick(
    client: TestClient, svc: Service
) -> None:
    team(client, "fsd")
    svc.loop.tick()
    with svc.sessions.begin() as s:  # a hand edit behind the API's back
        s.execute(update(m.Queue).values(flavor_quotas={SLOT: {"nominal_gpus": "many"}}))
    svc.loop.queues_dirty = True
    with pytest.raises(ValueError, match="nominal_gpus"):
        svc.loop.tick()  # what the loop thread catches before calling on_error
    assert svc.loop.on_error is not None
    svc.loop.on_error()
    svc.loop.tick()
    assert stored(svc)["fsd"] is None
    events = client.get("/v1/events", headers=ADMIN_H).json()
    assert any("flavor_quotas reset" in e["message"] for e in events), events


def test_a_nan_share_left_in_another_row_counts_as_zero_in_the_sum(
    client: TestClient, svc: Service, db_url: str
) -> None:
    # NaN made the sum NaN, and `NaN > 1` is false: any share passed the sum check (here
    # 0.5 + 0.6 = 1.1), then the flavor check's spec refused the NaN (a 500 for every edit).
    # The edit resets the row first, as repair_queues does: a share of 0.
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite stores NaN as NULL")
    for name in ("fsd", "optimus", "red"):
        team(client, name)
    assert put(client, "red", {"nominal_share": 0.5}).status_code == 200
    with svc.sessions.begin() as s:  # a hand edit behind the API's back
        s.execute(update(m.Queue).where(m.Queue.name == "optimus").values(nominal_share=nan))
    r = put(client, "fsd", {"nominal_share": 0.6})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "nominal_share"]
    assert "sum to 1.100" in r.json()["detail"][0]["msg"]
    assert put(client, "fsd", {"nominal_share": 0.5}).status_code == 200
    with svc.sessions() as s:  # the edit reset the row, as the repair would, and said so
        assert s.query(m.Queue).filter_by(name="optimus").one().nominal_share == 0.0
    events = client.get("/v1/events", headers=ADMIN_H).json()
    assert any("queue optimus: unusable nominal_share reset" in e["message"] for e in events)


def test_the_queues_table_says_what_each_flavor_quota_sets() -> None:
    from cortex.cli.client import _flavor_quotas

    given = {
        "H200-SXM": {"nominal_share": 0.75, "borrowing_limit_share": 0.25},
        "H100-SXM5": {"nominal_gpus": 8},
        "B200-HGX": {"borrowing_limit_gpus": 0},
    }
    assert _flavor_quotas(given) == (
        "H200-SXM: nominal 0.75 borrow 0.25; H100-SXM5: nominal 8; B200-HGX: borrow 0"
    )
    assert _flavor_quotas({}) is None


def _waits_behind_an_open_write(
    svc: Service, values: dict[str, Any], action: Callable[[], None]
) -> None:
    """Run `action` on a thread while another transaction holds queue fsd's row, written with
    `values` and not committed: the action must still be waiting a second later, then finish
    once that transaction commits."""
    with svc.sessions.begin() as s:
        s.execute(update(m.Queue).where(m.Queue.name == "fsd").values(**values))
        second = threading.Thread(target=action)
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive()  # it waits on the open write's row lock
    second.join(timeout=30.0)
    assert not second.is_alive()


def test_two_quota_edits_at_once_cannot_overfill_a_flavor(
    client: TestClient, svc: Service, db_url: str
) -> None:
    # PostgreSQL runs two edits of different queues at once (READ COMMITTED): each used to read
    # the other's old quota, pass the sum check and commit, leaving 3 + 2 of 4 slots promised.
    # SQLite's writers are serialized, so only PostgreSQL can show it.
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite serializes writers")
    team(client, "fsd")
    team(client, "optimus")
    result: dict[str, Any] = {}
    # The first edit, written but not yet committed; before the fix the second had already
    # answered by the time the helper checks that it waits.
    _waits_behind_an_open_write(
        svc,
        {"flavor_quotas": {SLOT: {"nominal_gpus": 3}}},
        lambda: result.update(
            r=put(client, "optimus", {"flavor_quotas": {SLOT: {"nominal_gpus": 2}}})
        ),
    )
    r = result["r"]
    assert r.status_code == 422, r.text
    assert stored(svc) == {"fsd": {SLOT: {"nominal_gpus": 3}}, "optimus": None}


def test_a_repair_at_once_with_an_edit_keeps_the_edit(
    client: TestClient, svc: Service, db_url: str
) -> None:
    # repair_queues (at start and after a failed tick) read the rows unlocked: an admin's fix
    # of an unusable value, committed meanwhile, was overwritten by the repair's default.
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite serializes writers")
    team(client, "fsd")
    with svc.sessions.begin() as s:  # a hand edit no tick can use
        s.execute(update(m.Queue).where(m.Queue.name == "fsd").values(weight=0.0))

    def repair() -> None:
        with svc.sessions.begin() as r:
            repair_queues(r, 0.0)

    _waits_behind_an_open_write(svc, {"weight": 5.0}, repair)  # the admin's fix, uncommitted
    with svc.sessions() as s:
        assert s.query(m.Queue).filter_by(name="fsd").one().weight == 5.0
