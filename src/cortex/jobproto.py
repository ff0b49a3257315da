"""The job protocol shared by executors and training programs: the environment a job is started
with and the exit codes that tell the control plane what happened. Any user's script may follow
it; `cortex.training` is the reference implementation."""

from __future__ import annotations

ENV_JOB_ID = "CORTEX_JOB_ID"
ENV_CHECKPOINT_DIR = "CORTEX_CHECKPOINT_DIR"  # per-job directory that survives restarts
ENV_METRICS_FILE = "CORTEX_METRICS_FILE"  # JSON lines: step, loss, samples_per_s, gpu_power_w

EXIT_OK = 0
# EX_TEMPFAIL from sysexits.h: "temporary failure, retry later". A job that checkpointed on SIGTERM
# exits with it so that the control plane requeues it instead of counting a failure.
EXIT_PREEMPTED = 75
