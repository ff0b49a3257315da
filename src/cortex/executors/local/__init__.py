"""The local executor: a job's ranks as processes on this machine, under a detached runner
per run (`runner.py`), with run dirs that survive the service (`rundir.py`), process identity
from /proc (`procfs.py`), per-team Unix users (`users.py`) and GPU discovery (`gpus.py`)."""
