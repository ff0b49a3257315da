"""The job protocol shared by executors and training programs: the environment a job is started
with and the exit codes that tell the control plane what happened. Any user's script may follow
it; `cortex.training` is the reference implementation."""

from __future__ import annotations

ENV_JOB_ID = "CORTEX_JOB_ID"
ENV_CHECKPOINT_DIR = "CORTEX_CHECKPOINT_DIR"  # per-job directory that survives restarts
ENV_METRICS_FILE = "CORTEX_METRICS_FILE"  # JSON lines: step, loss, samples_per_s, gpu_power_w
# The control plane reads the metrics file as the job's progress (GET /v1/jobs/{id}): each line
# should carry `ts` (Unix seconds) and `attempt`; `{"event": "checkpoint", "step": N}` marks a
# checkpoint written.
ENV_ATTEMPT = "CORTEX_ATTEMPT"  # this run's attempt number (1, 2, ...)
# Seconds between periodic checkpoints: the job's `checkpoint_interval_s`, when it set one.
ENV_CHECKPOINT_INTERVAL_S = "CORTEX_CHECKPOINT_INTERVAL_S"

EXIT_OK = 0
# EX_TEMPFAIL from sysexits.h: "temporary failure, retry later". A job that checkpointed on SIGTERM
# exits with it so that the control plane requeues it instead of counting a failure.
EXIT_PREEMPTED = 75
