"""The driver kit: the rules around `schedule()` that both drivers (the twin in `sim/`, the
control plane in `control/`) apply, written once: intake (`intake.py`), runs (`runs.py`: begin,
requeue, backoff, finality) and power books (`power_books.py`). It sits above the scheduler and
below both drivers; it never imports `sim`, `control` or an executor."""
