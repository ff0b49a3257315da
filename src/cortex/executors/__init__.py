"""Executors: what runs the control plane's jobs. `base.Executor` is the one interface the
scheduler loop talks to; `spec` is its vocabulary (launch spec, handle, exit record, job env);
`local/` runs jobs as processes on this machine (the default). Executors know nothing of the
control plane, the twin or the scheduler (import contracts in pyproject.toml)."""
