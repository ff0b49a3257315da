"""The procedural generators and the step-keyed stream."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cortex.training.config import build_config  # noqa: E402
from cortex.training.data_fsd import DT_S, WAYPOINT_SCALE_M, FsdGenerator  # noqa: E402
from cortex.training.data_optimus import (  # noqa: E402
    ACTION_SCALE_RAD,
    OptimusGenerator,
    forward_kinematics,
)
from cortex.training.stream import BatchStream, make_loader  # noqa: E402

FSD = build_config("fsd", "tiny").model
OPT = build_config("optimus", "tiny").model


@pytest.mark.parametrize("make", [lambda: FsdGenerator(FSD, 3), lambda: OptimusGenerator(OPT, 3)])
def test_a_sample_is_a_function_of_seed_and_index(make) -> None:
    a, b = make().sample(11), make().sample(11)
    c = make().sample(12)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert not np.array_equal(a[next(iter(a))], c[next(iter(c))])


def test_fsd_waypoints_follow_the_speed_and_bend_with_the_road() -> None:
    gen = FsdGenerator(FSD, 0)
    for i in range(20):
        s = gen.sample(i)
        wp = s["waypoints"] * WAYPOINT_SCALE_M
        speed = s["speed"][0] * 10.0
        step = np.linalg.norm(np.diff(np.vstack([[0, 0], wp]), axis=0), axis=1)
        # consecutive waypoints are one DT_S apart along an arc driven at the speed reading
        np.testing.assert_allclose(step, speed * DT_S, rtol=0.05, atol=0.3)
        assert np.all(wp[:, 0] > 0)  # always ahead


def test_fsd_occupancy_is_a_fraction_and_boxes_appear() -> None:
    gen = FsdGenerator(FSD, 0)
    occ = np.stack([gen.sample(i)["occupancy"] for i in range(20)])
    assert occ.min() >= 0 and occ.max() <= 1
    assert 0.001 < occ.mean() < 0.2
    video = gen.sample(0)["video"]
    assert video.shape == (FSD.frames, FSD.cameras, 3, FSD.height, FSD.width)
    # the ego moves, so consecutive frames differ
    assert np.abs(video[1] - video[0]).mean() > 0.01


def test_optimus_expert_moves_toward_the_target() -> None:
    gen = OptimusGenerator(OPT, 0)
    moved = 0
    for i in range(30):
        s = gen.sample(i)
        sin, cos = s["proprio"][: OPT.joints], s["proprio"][OPT.joints : 2 * OPT.joints]
        q = np.arctan2(sin, cos)
        target_img = s["image"][0]
        assert target_img.max() > 0.5  # the target is drawn
        q_next = q + s["action"][-1] * ACTION_SCALE_RAD
        tip_now = forward_kinematics(q, gen.lengths)[-1]
        tip_next = forward_kinematics(q_next, gen.lengths)[-1]
        # the brightest target pixel, back in arm units
        r, c = np.unravel_index(np.argmax(target_img), target_img.shape)
        px = (np.array([c, OPT.image - 1 - r]) + 0.5) / OPT.image * 2.2 - 1.1
        if np.linalg.norm(tip_now - px) > 0.2:
            assert np.linalg.norm(tip_next - px) < np.linalg.norm(tip_now - px)
            moved += 1
    assert moved >= 5


def _batches(workers: int, start: int, n: int, rank: int = 0, world: int = 1) -> list[dict]:
    stream = BatchStream(lambda: OptimusGenerator(OPT, 0), 4, start, rank, world)
    return list(itertools.islice(make_loader(stream, workers, 0), n))


def test_stream_order_does_not_depend_on_worker_count_and_resumes_exactly() -> None:
    plain = _batches(0, 0, 6)
    with_workers = _batches(2, 0, 6)
    resumed = _batches(1, 3, 3)
    for a, b in zip(plain, with_workers, strict=True):
        assert torch.equal(a["image"], b["image"])
    for a, b in zip(plain[3:], resumed, strict=True):
        assert torch.equal(a["action"], b["action"])


def test_ranks_get_disjoint_samples() -> None:
    r0 = _batches(0, 0, 1, rank=0, world=2)[0]
    r1 = _batches(0, 0, 1, rank=1, world=2)[0]
    assert not torch.equal(r0["image"], r1["image"])
