"""Fuzz benchmark of the control plane's API on SQLite and PostgreSQL (issue 9 target: 10,000
requests per store, 0 5xx, 0 state changes from rejected input, 0 leaks across teams).

    python bench/fuzz_control.py                    # both stores, 10,000 requests each
    python bench/fuzz_control.py --db sqlite -n 2000

Requests are drawn by hypothesis (derandomized: the same run every time) from the service's
own OpenAPI schema, arbitrary JSON, and a list of hostile cases (alias bombs, nesting 5,000
deep, NaN/Infinity/1e400 in every numeric field, integers past int4 and int8, NUL characters,
non-UTF-8, working dirs outside the roots, oversized bodies and headers, bad idempotency keys,
revoked and expired tokens). They go through the real app in-process (FastAPI's TestClient:
middleware, routes, validation, the group-commit writer, the store), as the team "fsd", a wrong
token or the admin. After each request:
- no 5xx;
- a rejected request (4xx) left the store's fingerprint as it was (jobs, states, queues,
  tokens and their revocation, nodes, idempotency keys, transitions, allocations);
- an answer to "fsd" never holds anything of the team "victim" (its job names, env values and
  token carry a marker string).
Writes bench/out/fuzz_control.json; the summary goes in bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "control"))  # the schema strategies and fake executor

from fastapi.testclient import TestClient  # noqa: E402
from helpers import ADMIN, fake_service, job_body  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from test_fuzz import JSON, _operations, from_schema, requests  # noqa: E402

from cortex.control import models as m  # noqa: E402
from cortex.control.devpg import ThrowawayPostgres, find_bin  # noqa: E402
from cortex.control.service import Service  # noqa: E402

OUT = ROOT / "bench" / "out"
MARK = "VICTIMSECRET7f3a"
BOMB = (
    "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['x'] * 9)}]\n"
        for p, c in zip(["", "a", "b", "c", "d", "e"], ["a", "b", "c", "d", "e", "f"], strict=True)
    )
    + "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
)
NUMERIC = [
    "gpus",
    "duration_s",
    "work_gpu_hours",
    "checkpoint_write_s",
    "checkpoint_size_gb",
    "checkpoint_interval_s",
    "submit_s",
    "nprocs",
]
BAD_NUMBERS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"2147483648",
    b"9223372036854775808",
    b"1e308",
]


def hostile_cases() -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, extra headers, body) for the cases the audit tried by hand."""
    j = "application/json"
    y = "application/yaml"
    cases: list[tuple[str, str, dict[str, str], bytes]] = [
        ("POST", "/v1/jobs", {"Content-Type": y}, BOMB.encode()),
        ("POST", "/v1/jobs", {"Content-Type": j}, b"[" * 5000 + b"]" * 5000),
        ("POST", "/v1/jobs", {"Content-Type": y}, b"[" * 5000 + b"]" * 5000),
        (
            "POST",
            "/v1/jobs",
            {"Content-Type": y},
            b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 300)),
        ),
        ("POST", "/v1/jobs", {"Content-Type": j}, b'{"a":' * 3000 + b"1" + b"}" * 3000),
        ("POST", "/v1/jobs", {"Content-Type": j}, b"\xff\xfe\x00"),
        ("POST", "/v1/jobs", {"Content-Type": y}, b"\xff\xfe\x00"),
        ("POST", "/v1/jobs", {"Content-Type": j}, json.dumps(job_body(name="a\x00b")).encode()),
        (
            "POST",
            "/v1/jobs",
            {"Content-Type": j},
            json.dumps(job_body(working_dir="/etc")).encode(),
        ),
        (
            "POST",
            "/v1/jobs",
            {"Content-Type": j},
            json.dumps(job_body(working_dir="/root/../tmp")).encode(),
        ),
        (
            "POST",
            "/v1/jobs",
            {"Content-Type": j},
            json.dumps({"jobs": [job_body(), job_body(gpus=2**40)]}).encode(),
        ),
        ("POST", "/v1/jobs", {"Content-Type": j}, json.dumps(job_body(team="victim")).encode()),
        (
            "POST",
            "/v1/jobs",
            {"Content-Type": j, "Idempotency-Key": "has space"},
            json.dumps(job_body()).encode(),
        ),
        ("POST", "/v1/jobs", {"Content-Type": j}, b'{"pad": "' + b"x" * 300_000 + b'"}'),
        ("GET", "/v1/jobs", {"X-Pad": "y" * 20_000}, b""),
        (
            "PUT",
            "/v1/queues/fsd",
            {"Content-Type": j},
            b'{"weight":' + b"[" * 5000 + b"]" * 5000 + b"}",
        ),
        ("POST", "/v1/tokens", {"Content-Type": j}, b'{"team": "x", "expires_in_s": NaN}'),
    ]
    for field in NUMERIC:
        for num in BAD_NUMBERS:
            body = (
                json.dumps(job_body()).encode()[:-1] + b', "' + field.encode() + b'": ' + num + b"}"
            )
            if field in ("gpus", "duration_s"):  # replace rather than duplicate the key
                d = job_body()
                d.pop(field)
                body = json.dumps(d).encode()[:-1] + b', "' + field.encode() + b'": ' + num + b"}"
            cases.append(("POST", "/v1/jobs", {"Content-Type": j}, body))
    for field in ("nominal_share", "borrowing_limit_share", "weight"):
        for num in BAD_NUMBERS:
            cases.append(
                (
                    "PUT",
                    "/v1/queues/fsd",
                    {"Content-Type": j},
                    b'{"' + field.encode() + b'": ' + num + b"}",
                )
            )
    return cases


def fingerprint(svc: Service) -> tuple[Any, ...]:
    with svc.sessions() as s:
        counts = tuple(
            int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in (
                m.Job,
                m.JobTransition,
                m.Allocation,
                m.Team,
                m.Token,
                m.Queue,
                m.IdempotencyKey,
            )
        )
        queues = tuple(
            s.execute(
                select(
                    m.Queue.name,
                    m.Queue.nominal_share,
                    m.Queue.borrowing_limit_share,
                    m.Queue.weight,
                )
            ).all()
        )
        jobs = tuple(s.execute(select(m.Job.id, m.Job.state, m.Job.cancel_requested)).all())
        tokens = tuple(s.execute(select(m.Token.id, m.Token.revoked_at)).all())
        nodes = tuple(s.execute(select(m.Node.name, m.Node.schedulable)).all())
    return counts, queues, jobs, tokens, nodes


def run_store(url: str, home: Path, n: int) -> dict[str, Any]:
    svc = fake_service(url, home)
    c = TestClient(svc.app)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    fsd = c.post("/v1/tokens", json={"team": "fsd"}, headers=admin).json()["token"]
    victim = c.post("/v1/tokens", json={"team": "victim", "label": MARK}, headers=admin).json()[
        "token"
    ]
    svc.loop.tick()
    vh = {"Authorization": f"Bearer {victim}"}
    for i in range(3):
        c.post("/v1/jobs", json=job_body(name=f"{MARK}-{i}", env={"API_KEY": MARK}), headers=vh)
    c.post("/v1/jobs", json=job_body(), headers={"Authorization": f"Bearer {fsd}"})
    svc.loop.tick()
    ops = _operations(svc.app.openapi())
    cases = hostile_cases()
    stats: dict[str, Any] = {
        "requests": 0,
        "status": {},
        "5xx": [],
        "state_changed": [],
        "leaks": [],
    }

    last = [fingerprint(svc)]  # the store as the last accepted request or tick left it

    def check(method: str, path: str, kw: dict[str, Any], as_fsd: bool, label: Any) -> None:
        r = c.request(method, path, **kw)
        stats["requests"] += 1
        stats["status"][r.status_code] = stats["status"].get(r.status_code, 0) + 1
        if r.status_code >= 500:
            stats["5xx"].append([method, path, str(label)[:300], r.text[:300]])
        now = fingerprint(svc)
        if r.status_code >= 400 and now != last[0]:
            stats["state_changed"].append([method, path, str(label)[:300], r.status_code])
        last[0] = now
        if as_fsd and MARK in r.text:
            stats["leaks"].append([method, path, str(label)[:300]])
        if stats["requests"] % 50 == 0:
            svc.loop.tick()  # submissions taken in, so later requests see running jobs too
            last[0] = fingerprint(svc)

    n_hostile = min(n // 10, 4 * len(cases))
    for i in range(n_hostile):
        method, path, extra, body = cases[i % len(cases)]
        token = [fsd, fsd, ADMIN][i % 3]
        kw = {"headers": {"Authorization": f"Bearer {token}", **extra}, "content": body or None}
        check(method, path, kw, token == fsd, (method, path, body[:80]))

    victim_ids = [str(i) for i in range(1, 4)]
    paths = st.sampled_from(
        ["/v1/jobs/{}", "/v1/jobs/{}/logs", "/v1/jobs/{}/cancel", "/v1/events?job_id={}"]
    )

    @settings(
        max_examples=n - n_hostile,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        requests(ops, [fsd, fsd, fsd, "wrong-token", ADMIN])
        | st.tuples(st.just("VICTIM"), paths, st.sampled_from(victim_ids), JSON, st.just({}))
        | st.tuples(
            st.just("BODY"), st.just("/v1/jobs"), from_schema({"type": "object"}), JSON, st.just({})
        )
    )
    def fuzz(req: tuple[Any, ...]) -> None:
        method, path, params, body, headers = req
        if method == "VICTIM":  # fsd asks for the victim's jobs by id
            check(
                "GET" if "cancel" not in path else "POST",
                path.format(params),
                {"headers": {"Authorization": f"Bearer {fsd}"}},
                True,
                path,
            )
            return
        if method == "BODY":  # arbitrary JSON as a submission
            kw = {
                "headers": {"Authorization": f"Bearer {fsd}", "Content-Type": "application/json"},
                "content": json.dumps(body),
            }
            check("POST", path, kw, True, body)
            return
        kw = {"params": params, "headers": headers}
        if body is not None:
            kw["content"] = json.dumps(body)
            kw["headers"] = {**headers, "Content-Type": "application/json"}
        check(method, path, kw, headers.get("Authorization") == f"Bearer {fsd}", (params, body))

    t0 = time.perf_counter()
    fuzz()
    stats["wall_s"] = round(time.perf_counter() - t0, 1)
    stats["hostile_requests"] = n_hostile
    svc.close()
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("-n", type=int, default=10_000, help="requests per store")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.db in ("sqlite", "both"):
            home = Path(tmp) / "sqlite"
            results["sqlite"] = run_store(f"sqlite:///{home / 'fuzz.db'}", home, args.n)
            print("sqlite", json.dumps(results["sqlite"]), flush=True)
        if args.db in ("postgres", "both"):
            binp = find_bin()
            if binp is None:
                raise SystemExit("PostgreSQL binaries not found")
            pg = ThrowawayPostgres(binp, durable=False)
            base = pg.start()
            try:
                import psycopg

                with psycopg.connect(
                    base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
                ) as conn:
                    conn.execute('CREATE DATABASE "fuzz"')
                home = Path(tmp) / "pg"
                results["postgres"] = run_store(f"{base}/fuzz", home, args.n)
                print("postgres", json.dumps(results["postgres"]), flush=True)
            finally:
                pg.stop("immediate")
    (OUT / "fuzz_control.json").write_text(json.dumps(results, indent=2))
    bad = any(r["5xx"] or r["state_changed"] or r["leaks"] for r in results.values())
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
