"""A test-time guard for the scheduler's read-only views.

`Snapshot`, `Start` (scheduler/snapshot.py), `Allocation` (scheduler/capacity.py), `PowerView`,
`Grant` and `CapJob` (scheduler/power.py) are plain `@dataclass(slots=True)`, not frozen: a frozen
__init__ sets every field through object.__setattr__, 3-4x the cost, and the twin builds one
Snapshot per pass and one Start per start. "Policies only read them" is a rule the code keeps,
not one the type enforces; `guard` enforces it for the length of a test by giving each class a
__setattr__ that refuses to re-assign a field already set (with slots a field is unset, so
`hasattr` is False, until __init__ sets it) and a __delattr__ that refuses to delete one.

Only re-assignment is caught: a write into a field's own list or dict (`view.target[k] = ...`)
is not. The compiled core (CORTEX_COMPILED=1) makes these native classes whose __setattr__
cannot be replaced, and whose compiled code would not call it: `guard` then skips the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cortex.scheduler import capacity, power, snapshot

# Every view class, with the fields a driver may write after construction (none so far: the
# runs listed in tests/unit/test_frozen_views.py assign nothing after __init__).
GUARDED: dict[type, frozenset[str]] = {
    snapshot.Snapshot: frozenset(),
    snapshot.Start: frozenset(),
    capacity.Allocation: frozenset(),
    power.PowerView: frozenset(),
    power.Grant: frozenset(),
    power.CapJob: frozenset(),
}


class ViewWriteError(AttributeError):
    """A field of a read-only view was re-assigned or deleted after construction."""


def _setattr(allowed: frozenset[str]) -> Any:
    def refuse_set(self: object, name: str, value: object) -> None:
        if name not in allowed and hasattr(self, name):
            raise ViewWriteError(
                f"{type(self).__name__}.{name} re-assigned after construction "
                "(views are read-only: build a new one, e.g. dataclasses.replace)"
            )
        object.__setattr__(self, name, value)

    return refuse_set


def _delattr(allowed: frozenset[str]) -> Any:
    def refuse_del(self: object, name: str) -> None:
        if name not in allowed:
            raise ViewWriteError(f"{type(self).__name__}.{name} deleted after construction")
        object.__delattr__(self, name)

    return refuse_del


def compiled() -> bool:
    """Whether the view classes come from the compiled core (native: no guard possible)."""
    return not snapshot.__file__.endswith(".py")


def guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard every view class until `monkeypatch` is undone (the end of the test)."""
    if compiled():
        pytest.skip("the compiled core's classes are native: their writes cannot be guarded")
    for cls, allowed in GUARDED.items():
        monkeypatch.setattr(cls, "__setattr__", _setattr(allowed))
        monkeypatch.setattr(cls, "__delattr__", _delattr(allowed))


class WritesSnapshot:
    """A wrong ordering policy for the guard's own tests: `inner`'s order, after a write to the
    snapshot it was given (a no-op write, still a write: only the guard sees it)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:  # level, thresholds_gpu_s, ... of `inner`
        return getattr(self.inner, name)

    def key(self, job: Any) -> tuple[Any, ...]:
        return self.inner.key(job)  # type: ignore[no-any-return]

    def order(self, snap: snapshot.Snapshot) -> Iterator[Any]:
        snap.now_s = snap.now_s
        return self.inner.order(snap)  # type: ignore[no-any-return]
