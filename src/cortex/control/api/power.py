"""The site's power: GET /v1/power (any token), PUT /v1/power (admin: a new facility cap, for a
demand-response call or a lost feeder, and the outdoor temperature, from a weather or
building-management feed; applied by the next tick, and kept across restarts unless the
service's configuration changes)."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cortex.control import store
from cortex.control.api.deps import Admin, Svc, Who, err

router = APIRouter(prefix="/v1")
_PUT_LOCK = threading.Lock()  # PUT /v1/power: store and apply in one order


class PowerJobOut(BaseModel):
    job_id: int
    cap_level: int  # 0: uncapped
    modelled_w: float
    devices: list[int]


class BatteryOut(BaseModel):
    """The site battery's state, modelled (control/live_battery.py): no telemetry reaches here."""

    energy_mwh: float
    power_mw: float
    efficiency: float
    ramp_mw_per_min: float
    soc_mwh: float
    soc_fraction: float
    load_mw: float
    grid_mw: float
    battery_mw: float  # > 0: discharging, < 0: charging
    charged_mwh: float
    discharged_mwh: float
    losses_mwh: float
    violations: int
    steps: int
    at: float | None
    source: str


class PowerOut(BaseModel):
    policy: str
    site_cap_kw: float
    facility_kw: float  # modelled
    it_budget_over_idle_w: float
    it_booked_over_idle_w: float
    it_draining_over_idle_w: float
    it_measured_over_booked_w: float  # NVML: running jobs' draw above their booking
    paused: int
    solves: int
    cap_failures: int
    outdoor_temp_c: float
    jobs: list[PowerJobOut]
    battery: BatteryOut | None = None  # None: the site declares no battery


class PowerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    site_cap_kw: Annotated[float, Field(gt=0, le=1e9)] | None = None
    outdoor_temp_c: Annotated[float, Field(ge=-60, le=70)] | None = None

    @model_validator(mode="after")
    def _something(self) -> PowerUpdate:
        if self.site_cap_kw is None and self.outdoor_temp_c is None:
            raise ValueError("give site_cap_kw, outdoor_temp_c or both")
        return self


def _power(svc: Svc, team: str | None = None) -> PowerOut:
    """`team`: only that team's jobs are listed (another team's job is not even named, as in
    GET /v1/jobs/{id}); None lists all (the admin)."""
    power = svc.loop.power
    if power is None:
        raise HTTPException(404, "no power policy: start the service with --power-policy")
    snap = power.report()
    return PowerOut(
        policy=snap.policy,
        site_cap_kw=snap.site_cap_w / 1e3,
        facility_kw=snap.facility_w / 1e3,
        it_budget_over_idle_w=snap.site_budget_it_w,
        it_booked_over_idle_w=snap.booked_it_w,
        it_draining_over_idle_w=snap.draining_it_w,
        it_measured_over_booked_w=snap.overdraw_it_w,
        paused=snap.paused,
        solves=snap.solves,
        cap_failures=snap.cap_failures,
        outdoor_temp_c=snap.outdoor_temp_c,
        battery=BatteryOut(**power.battery.state.to_dict()) if power.battery is not None else None,
        jobs=[
            PowerJobOut(job_id=j, cap_level=lv, modelled_w=w, devices=list(devs))
            for j, (lv, w, devs) in sorted(snap.jobs.items())
            if team is None or getattr(svc.loop.mirror.jobs.get(j), "team", None) == team
        ],
    )


@router.get("/power", response_model=PowerOut, summary="Site power, budget and per-job caps")
def get_power(who: Who, svc: Svc) -> PowerOut:
    return _power(svc, None if who.admin else who.team)


@router.put(
    "/power", response_model=PowerOut, summary="Set the facility cap or outdoor temperature (admin)"
)
def put_power(body: PowerUpdate, who: Admin, svc: Svc) -> PowerOut:
    power = svc.loop.power
    if power is None:
        raise HTTPException(404, "no power policy: start the service with --power-policy")
    temp, cap = body.outdoor_temp_c, body.site_cap_kw
    if cap is not None:
        try:  # against the idle fleet at the temperature this request leaves in force
            power.check_cap_kw(cap, temp)
        except ValueError as e:
            raise err(422, ["body", "site_cap_kw"], str(e).removeprefix("site_cap_kw: ")) from None
    said = [f"site cap set to {cap:g} kW"] if cap is not None else []
    said += [f"outdoor temperature {temp:g} C"] if temp is not None else []
    # Stored, then applied, one request at a time: what a restart restores (LivePower.restore)
    # is what was last applied, and a failed write applies nothing.
    with _PUT_LOCK:
        now = svc.clock.time()
        with svc.sessions.begin() as s:
            if cap is not None:
                store.put_site_setting(s, "site_cap_kw", cap, svc.settings.site_cap_kw, now)
            if temp is not None:
                conf = svc.settings.outdoor_temp_c
                store.put_site_setting(s, "outdoor_temp_c", temp, conf, now)
            store.event(s, "power", "; ".join(said), at=now)
        if temp is not None:
            power.request_temp_c(temp)  # bounded by the body's schema
        if cap is not None:
            power.request_cap_kw(cap, temp)
    out = _power(svc)
    if cap is not None:
        out = out.model_copy(update={"site_cap_kw": cap})
    if temp is not None:
        out = out.model_copy(update={"outdoor_temp_c": temp})
    return out
