"""What a preempted job keeps: one rule, read by the twin and (later) by the control plane.

The product stops a victim with SIGTERM, waits its grace period, then SIGKILLs it. A job that
checkpoints on the signal (the job protocol's default: the SIGTERM handler checkpoints and the
job exits 75) writes one checkpoint inside the grace period and keeps all the work it has done;
its devices stay busy for that write. A job that declares it cannot checkpoint on the signal
(`JobSpec.checkpoint_on_signal: false`) exits at once and keeps only what its last periodic
checkpoint saved. A write that does not fit the grace period is killed: the job keeps its last
periodic checkpoint and held its devices for the whole grace period.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignalStop:
    """The outcome of one preemption, in seconds of the run's compute and wall clock."""

    kept_s: float  # compute kept (never less than the last periodic checkpoint's)
    hold_s: float  # wall seconds the devices stay busy after the signal
    wrote_s: float  # of hold_s, seconds spent on a checkpoint write that completed


def on_preempt(
    done_s: float,
    saved_s: float,
    write_s: float,
    grace_s: float,
    checkpoint_on_signal: bool,
) -> SignalStop:
    """The rule. `done_s` is the compute done in this run, `saved_s` the part of it the last
    periodic checkpoint saved, `write_s` one checkpoint write (0: writes in no time)."""
    if done_s < saved_s or saved_s < 0 or write_s < 0 or grace_s < 0:
        raise ValueError(
            f"need 0 <= saved_s <= done_s and write_s, grace_s >= 0; got done_s={done_s}, "
            f"saved_s={saved_s}, write_s={write_s}, grace_s={grace_s}"
        )
    if not checkpoint_on_signal or done_s == saved_s:
        return SignalStop(saved_s, 0.0, 0.0)  # nothing new to save, or no way to save it
    if write_s <= grace_s:
        return SignalStop(done_s, write_s, write_s)
    return SignalStop(saved_s, grace_s, 0.0)  # SIGKILL lands mid-write


def cost_s(
    done_s: float,
    saved_s: float,
    write_s: float,
    grace_s: float,
    checkpoint_on_signal: bool,
    restart_s: float,
) -> float:
    """Seconds of its gang's time a preemption now costs a job: the compute it would not keep,
    its devices' hold for a write on the signal, and the restart. Victims are chosen by GPUs
    times this (scheduler/victims.py), in both drivers."""
    stop = on_preempt(done_s, saved_s, write_s, grace_s, checkpoint_on_signal)
    return done_s - stop.kept_s + stop.hold_s + restart_s
