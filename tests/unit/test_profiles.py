"""Named profiles (scheduler/registry.py): what each name builds, and the error for an unknown
name listing the known ones, for the scheduling and the power policies."""

from __future__ import annotations

import pytest

from cortex.scheduler.admission import QuotaCheck
from cortex.scheduler.hetero import (
    EqFairShare,
    HeteroAllocator,
    TargetFlavorOrder,
    TargetShareCheck,
)
from cortex.scheduler.power import AdmitUncapped, CapToFit
from cortex.scheduler.preemption import PriorityReclaim
from cortex.scheduler.registry import policies, power_profile


def test_the_hetero_profile_wiring() -> None:
    for backfill in (True, False):
        p = policies("hetero", backfill=backfill)
        assert isinstance(p.ordering, EqFairShare)
        assert [type(a) for a in p.admission] == [QuotaCheck, TargetShareCheck]
        assert isinstance(p.preemption, PriorityReclaim)
        assert isinstance(p.flavor_order, TargetFlavorOrder)
        assert isinstance(p.allocator, HeteroAllocator)
        assert p.backfill is backfill
        assert p.allocator.per_class is False
    per_class = policies("hetero-class").allocator
    assert isinstance(per_class, HeteroAllocator) and per_class.per_class


def test_an_unknown_scheduling_policy_lists_the_known_ones() -> None:
    with pytest.raises(KeyError) as err:
        policies("lottery")
    assert err.value.args == (
        "unknown policy 'lottery'; known: fifo, priority, las, hetero, hetero-class",
    )


def test_power_profiles_for_the_twin_include_its_studies() -> None:
    # Without `live` (the twin), every profile resolves, the twin-only ones included.
    assert power_profile("static").static and not power_profile("static").live
    assert power_profile("full").ramp and not power_profile("full").live
    assert power_profile("cap").make is CapToFit and power_profile("cap").capped_starts
    assert power_profile("admit").make is AdmitUncapped
    assert power_profile("none").make is None and not power_profile("none").needs_site_cap


def test_the_live_control_plane_refuses_the_twin_only_power_profiles() -> None:
    assert power_profile("cap", live=True).make is CapToFit
    for name in ("static", "full"):
        with pytest.raises(KeyError) as err:
            power_profile(name, live=True)
        # Only the profiles marked live are offered: none, admit, cap (in table order).
        assert err.value.args == (f"unknown power policy {name!r}; known: none, admit, cap",)


def test_an_unknown_power_policy_lists_every_profile_for_the_twin() -> None:
    with pytest.raises(KeyError) as err:
        power_profile("turbo")
    assert err.value.args == (
        "unknown power policy 'turbo'; known: none, static, admit, cap, full",
    )
