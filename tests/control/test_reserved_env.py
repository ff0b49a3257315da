"""A variable the executor sets for every run (executors.spec.RESERVED_ENV) in a submission's
`env` is refused, naming it: `--env CUDA_VISIBLE_DEVICES=...` was overridden without a word."""

from __future__ import annotations

from pathlib import Path

import pytest
from clienv import CliEnv
from fastapi.testclient import TestClient
from helpers import ADMIN, job_body

from cortex.executors.spec import RESERVED_ENV

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliEnv:
    e = CliEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, monkeypatch)
    yield e
    e.close()


def test_cuda_visible_devices_is_refused_naming_it(env: CliEnv) -> None:
    c: TestClient = env.client
    for path in ("/v1/jobs", "/v1/jobs/dry-run"):
        r = c.post(path, json=job_body(env={"A": "1", "CUDA_VISIBLE_DEVICES": "3"}))
        assert r.status_code == 422, r.text
        [d] = r.json()["detail"]
        assert d["loc"] == ["body", "env", "CUDA_VISIBLE_DEVICES"] and d["type"] == "reserved"
        assert d["msg"].startswith("reserved: the executor sets it to the devices the job is")
    r = c.post("/v1/jobs", json={"jobs": [job_body(), job_body(env={"RANK": "0"})]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "jobs", 1, "env", "RANK"]
    assert c.get("/v1/jobs").json()["jobs"] == []  # nothing stored
    for name in sorted(RESERVED_ENV):
        r = c.post("/v1/jobs", json=job_body(env={name: "x"}))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == name, name
    # Others pass, a protocol variable the executor does not set among them.
    r = c.post("/v1/jobs", json=job_body(env={"OMP_NUM_THREADS": "4", "CUDA_LAUNCH_BLOCKING": "1"}))
    assert r.status_code == 201, r.text


def test_the_cli_says_it_with_exit_2(env: CliEnv) -> None:
    code, _, err = env.run(
        "submit", "--env", "CUDA_VISIBLE_DEVICES=0,1", "--duration-s", "5", "--", "true"
    )
    assert code == 2
    assert "env.CUDA_VISIBLE_DEVICES" in err and "reserved" in err, err


def test_a_variable_set_from_a_field_given_is_refused_with_it(env: CliEnv) -> None:
    """CORTEX_ARRAY_INDEX with `array`, CORTEX_CHECKPOINT_INTERVAL_S with
    `checkpoint_interval_s`: the control plane sets them over the user's value, which went
    without a word as the executor's did (review15). Without the field, the variable passes."""
    c: TestClient = env.client
    for name, field in (
        ("CORTEX_ARRAY_INDEX", {"array": "0-1"}),
        ("CORTEX_CHECKPOINT_INTERVAL_S", {"checkpoint_interval_s": 60}),
    ):
        r = c.post("/v1/jobs", json=job_body(env={name: "7"}, **field))
        assert r.status_code == 422, r.text
        [d] = r.json()["detail"]
        assert d["loc"] == ["body", "env", name] and d["type"] == "reserved", d
        assert next(iter(field)) in d["msg"], d
        assert c.post("/v1/jobs", json=job_body(env={name: "7"})).status_code == 201
