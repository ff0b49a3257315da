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

# Ray ends a driver whose head has not answered for `gcs_rpc_server_reconnect_timeout_s` (60 s
# by default) with exit 1, and the driver here is the whole control plane. The executor lets go
# of a lost head itself (headloss.py: `ray.shutdown()` on a thread, ~5 s here), but on a loaded
# machine that once took past 60 s and the service died with its head (CI, stop 30). Ten
# minutes for this process only: Ray reads it from the environment (a driver cannot pass a
# system config), and an operator's own value wins.
os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "600")
