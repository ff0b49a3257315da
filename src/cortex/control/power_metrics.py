"""The live power model's Prometheus metrics: the site's and each running job's watts, cap
levels and power actions, from the snapshot the scheduler loop publishes (control/loop_power.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from cortex.control.loop_power import LivePower


class PowerCollector(Collector):
    """Site and per-job watts: measured (NVML) where the actuator can, else modelled."""

    def __init__(self, power: LivePower) -> None:
        self._power = power

    def collect(self) -> Iterator[Metric]:
        snap = self._power.report()
        act = self._power.actuator
        measured: dict[int, float] = {}
        if act is not None:  # every device, busy or idle: NVML answers in about a millisecond
            for d in self._power.loop.all_devices:
                w = act.draw_w(d)
                if w is not None:
                    measured[d] = w
        site = GaugeMetricFamily(
            "cortex_power_site_watts",
            "Site power: facility, cap and budgets modelled from the books; the GPUs' measured "
            "draw (NVML) where every device can be read",
            labels=["what"],
        )
        site.add_metric(["facility"], snap.facility_w)
        if measured and len(measured) == len(self._power.loop.all_devices):
            site.add_metric(["gpus_measured"], sum(measured.values()))
        site.add_metric(["cap"], snap.site_cap_w)
        site.add_metric(["it_budget_over_idle"], snap.site_budget_it_w)
        site.add_metric(["it_booked_over_idle"], snap.booked_it_w)
        site.add_metric(["it_draining_over_idle"], snap.draining_it_w)
        site.add_metric(["it_measured_over_booked"], snap.overdraw_it_w)
        yield site
        job_w = GaugeMetricFamily(
            "cortex_power_job_watts",
            "A running job's GPU power: measured through NVML where available, else modelled",
            labels=["job", "source"],
        )
        level = GaugeMetricFamily(
            "cortex_power_job_cap_level", "A running job's cap level (0: uncapped)", labels=["job"]
        )
        for jid, (lv, modelled_w, devs) in snap.jobs.items():
            if devs and all(d in measured for d in devs):
                job_w.add_metric([str(jid), "nvml"], sum(measured[d] for d in devs))
            else:
                job_w.add_metric([str(jid), "model"], modelled_w)
            level.add_metric([str(jid)], lv)
        yield job_w
        yield level
        bat = self._power.battery
        if bat is not None:
            b = bat.state
            g = GaugeMetricFamily(
                "cortex_power_battery",
                "The site battery, modelled from the facility draw (the twin's dispatch)",
                labels=["what"],
            )
            g.add_metric(["soc_fraction"], b.soc_fraction)
            g.add_metric(["soc_mwh"], b.soc_mwh)
            g.add_metric(["energy_mwh"], b.energy_mwh)
            g.add_metric(["battery_mw"], b.battery_mw)
            g.add_metric(["grid_mw"], b.grid_mw)
            yield g
        counts = GaugeMetricFamily(
            "cortex_power_actions", "Power actions since start", labels=["what"]
        )
        counts.add_metric(["paused"], snap.paused)
        counts.add_metric(["solves"], snap.solves)
        counts.add_metric(["cap_failures"], snap.cap_failures)
        yield counts
