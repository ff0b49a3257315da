"""Real PyTorch training workloads that follow the Cortex job protocol (`cortex.jobproto`).

`python -m cortex.training.fsd` trains an end-to-end driving network on procedural multi-camera
video; `python -m cortex.training.optimus` trains a transformer policy by behavior cloning on a
procedural reaching arm. Both checkpoint atomically, resume exactly, exit 75 on SIGTERM after
checkpointing, and write JSON-lines metrics. Torch is an optional extra (`cortex[train]`): nothing
outside this package imports it, and this `__init__` imports nothing from torch either.
"""
