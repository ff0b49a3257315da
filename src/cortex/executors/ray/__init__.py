"""The Ray executor: the control plane's gangs on a Ray cluster. `fleet.py` reads the nodes
from their Cortex labels, `gang.py` splits a placement into per-node parts and names the
placement group and actors, `agent.py` is the per-node actor that runs a gang's ranks as
processes, and `executor.py` implements the executor interface (executors/base.py) on them.
Importing this package needs `ray` (the `ray` extra)."""

import os

# Ray's public calls (get_actor, placement_group, ...) start a private local Ray cluster when
# the driver is not connected. Here that would happen inside the control plane whenever a call
# outlives a lost head (a teardown still on the worker thread): a cluster nobody watches, whose
# driver Ray ends with os._exit(1) once that cluster is gone. The executor always joins its
# cluster explicitly, so such a call must fail instead. Ray reads this once, at its import.
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
