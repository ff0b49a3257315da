"""The Ray executor: the control plane's gangs on a Ray cluster. `fleet.py` reads the nodes
from their Cortex labels, `gang.py` splits a placement into per-node parts and names the
placement group and actors, `agent.py` is the per-node actor that runs a gang's ranks as
processes, and `executor.py` implements the executor interface (executors/base.py) on them.
Importing this package needs `ray` (the `ray` extra)."""
