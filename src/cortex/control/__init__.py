"""The control plane: store, API, scheduler loop and the executors that run real jobs."""
