"""Procedural reaching demonstrations for the optimus workload (numpy only).

A planar arm of `joints` links (total reach 1) sits at the centre of a top-down camera. An expert
(damped least-squares inverse kinematics with a joint-speed limit) drives the end effector to a
target. A sample is one moment of one demonstration:

- proprioception: joint positions and velocities at time t;
- camera: the target (red), the links (green) and the end effector (blue) as soft blobs; the
  target appears only here, so the policy must read the image;
- action: the expert's next `chunk` joint positions, given as offsets from the current ones
  (divided by `ACTION_SCALE_RAD` so the loss is O(1)).

Every sample is a pure function of (seed, index).
"""

from __future__ import annotations

import numpy as np

from cortex.training.config import OptimusModel

EPISODE_STEPS = 24
MAX_JOINT_STEP_RAD = 0.12  # per control step: the expert is speed limited, as real arms are
DLS_DAMPING = 0.05
GAIN = 0.5
ACTION_SCALE_RAD = 0.25
VIEW_HALF = 1.1  # the image spans [-1.1, 1.1]^2 in arm units
BLOB_SIGMA = 0.06
POINTS_PER_LINK = 6


def forward_kinematics(q: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Joint angles (..., n) → positions of every joint and the tip (..., n + 1, 2)."""
    ang = np.cumsum(q, axis=-1)
    steps = np.stack([np.cos(ang), np.sin(ang)], axis=-1) * lengths[:, None]
    zero = np.zeros((*q.shape[:-1], 1, 2))
    return np.concatenate([zero, np.cumsum(steps, axis=-2)], axis=-2)


def expert_step(q: np.ndarray, target: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """One damped least-squares IK step toward `target`, clipped to the joint speed limit."""
    ang = np.cumsum(q)
    # d tip / d q_i sums the links from i outwards
    jx = -np.cumsum((lengths * np.sin(ang))[::-1])[::-1]
    jy = np.cumsum((lengths * np.cos(ang))[::-1])[::-1]
    jac = np.stack([jx, jy])  # (2, n)
    err = target - forward_kinematics(q, lengths)[-1]
    dq = jac.T @ np.linalg.solve(jac @ jac.T + DLS_DAMPING**2 * np.eye(2), GAIN * err)
    return q + np.clip(dq, -MAX_JOINT_STEP_RAD, MAX_JOINT_STEP_RAD)


class OptimusGenerator:
    """Draws sample `index` of the stream seeded by `seed`."""

    def __init__(self, m: OptimusModel, seed: int) -> None:
        self.m = m
        self.seed = seed
        self.lengths = np.full(m.joints, 1.0 / m.joints)
        px = (np.arange(m.image) + 0.5) / m.image * 2 * VIEW_HALF - VIEW_HALF
        self.gx, self.gy = np.meshgrid(px, -px)  # row 0 is +y (top of the image)

    def _splat(self, pts: np.ndarray) -> np.ndarray:
        d2 = (self.gx[None] - pts[:, 0, None, None]) ** 2 + (
            self.gy[None] - pts[:, 1, None, None]
        ) ** 2
        return np.exp(-d2 / (2 * BLOB_SIGMA**2)).max(axis=0)

    def sample(self, index: int) -> dict[str, np.ndarray]:
        m = self.m
        rng = np.random.default_rng([self.seed, index])
        q = rng.uniform(-1.2, 1.2, m.joints)
        q_goal = rng.uniform(-1.2, 1.2, m.joints)  # a reachable target: the tip of a random pose
        target = forward_kinematics(q_goal, self.lengths)[-1]
        t = int(rng.integers(0, EPISODE_STEPS))
        traj = [q]
        for _ in range(t + m.chunk):
            traj.append(expert_step(traj[-1], target, self.lengths))
        q_t, q_prev = traj[t], traj[max(t - 1, 0)]
        future = np.stack(traj[t + 1 : t + 1 + m.chunk])

        joints_xy = forward_kinematics(q_t, self.lengths)
        frac = np.linspace(0.0, 1.0, POINTS_PER_LINK, endpoint=False)
        links = joints_xy[:-1, None] + frac[None, :, None] * np.diff(joints_xy, axis=0)[:, None]
        image = np.stack(
            [
                self._splat(target[None]),
                self._splat(links.reshape(-1, 2)),
                self._splat(joints_xy[-1:]),
            ]
        ).astype(np.float32)
        image += rng.normal(0.0, 0.02, size=image.shape).astype(np.float32)
        proprio = np.concatenate([np.sin(q_t), np.cos(q_t), (q_t - q_prev) / MAX_JOINT_STEP_RAD])
        return {
            "image": image,
            "proprio": proprio.astype(np.float32),
            "action": ((future - q_t) / ACTION_SCALE_RAD).astype(np.float32),
        }
