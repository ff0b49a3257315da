"""Submission-time checks of job gates (holds, `after_ok` dependencies, job arrays), shared by
POST /v1/jobs and the dry run: a dependency on a job that does not exist (or another team's,
which reads the same) or one that can never complete is refused with its reason, and an array
is expanded into its members here, before anything is stored."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from cortex.control import store_gates

ARRAY = re.compile(r"^([0-9,\-]+)(?:%([0-9]+))?$")
MAX_INDEX = 1_000_000
ARRAY_ENV = "CORTEX_ARRAY_INDEX"


class GateError(ValueError):
    def __init__(self, field: str, msg: str, index: int = 0) -> None:
        super().__init__(msg)
        self.field = field
        self.index = index  # which request of the submission


def parse_array(text: str, cap: int) -> tuple[list[int], int | None]:
    """`0-99%8`, `1,3,5-7`, `7`: the indices in order (each once) and the limit, if any.
    Bounded: at most `cap` indices, each at most MAX_INDEX, the limit at least 1."""
    got = ARRAY.match(text.strip())
    if got is None:
        raise GateError("array", "expected FIRST-LAST[%LIMIT] or a list like 1,3,5-7[%LIMIT]")
    indices: dict[int, None] = {}
    for part in got.group(1).split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise GateError("array", f"{part!r} is not an index or a range FIRST-LAST")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise GateError("array", f"range {part!r} ends before it begins")
        if b > MAX_INDEX:
            raise GateError("array", f"indices go up to {MAX_INDEX}")
        if len(indices) + (b - a + 1) > cap:
            raise GateError("array", f"at most {cap} jobs per submission")
        for i in range(a, b + 1):
            indices[i] = None
    limit = int(got.group(2)) if got.group(2) is not None else None
    if limit is not None and limit < 1:
        raise GateError("array", "the limit after % must be at least 1")
    return list(indices), limit


def expand(reqs: Sequence[Any], cap: int) -> tuple[list[Any], list[int]]:
    """Each request with `array` becomes one request per index (name `NAME[i]`, env
    CORTEX_ARRAY_INDEX=i, one array key shared); the other requests stay. Also the position
    in `reqs` each result came from (to name fields in errors)."""
    out: list[Any] = []
    origin: list[int] = []
    for n, req in enumerate(reqs):
        if req.array is None:
            out.append(req)
            origin.append(n)
            continue
        try:
            indices, limit = parse_array(req.array, cap)
        except GateError as e:
            raise GateError(e.field, str(e), n) from None
        key = uuid.uuid4().hex
        for i in indices:
            member = req.model_copy(
                update={"name": f"{req.name}[{i}]"[:200], "env": {**req.env, ARRAY_ENV: str(i)}}
            )
            member._array_member = (key, i, limit)
            out.append(member)
            origin.append(n)
        if len(out) > cap:
            raise GateError("array", f"at most {cap} jobs per submission", n)
    return out, origin


def check_dependencies(
    s: Any,
    reqs: Sequence[Any],
    visible: Callable[[str, str], bool],
    refuse: Callable[..., NoReturn],
) -> None:
    """Every `after_ok` id names a job the submitter's team may see that can still complete.
    A new job has no id yet, so it can name only existing jobs: a cycle cannot be formed."""
    ids = {d for r in reqs for d in r.after_ok}
    known = store_gates.states(s, ids)
    for n, req in enumerate(reqs):
        for d in req.after_ok:
            state, team = known.get(d, ("", ""))
            if not state or not visible(req.team, team):
                refuse(n, "after_ok", f"job {d} not found")
            if state in store_gates.FINAL_NOT_OK:
                refuse(n, "after_ok", f"job {d} is {state}: the dependency can never be met")
