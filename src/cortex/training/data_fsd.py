"""Procedural driving scenes for the fsd workload (numpy only; no dataset download).

A scene is a curved road (a circular arc of curvature kappa) with four lanes, dashed lane
markings, and boxes (other vehicles) moving along their lanes at constant speed. The ego car
drives in the right-hand lane at speed v. Each camera, mounted on the ego at its own yaw, sees
the ground plane through a pinhole model: every pixel below the horizon is cast onto the ground,
converted to road (Frenet) coordinates and coloured by what lies there. Because the whole scene
is analytic, the ground truth is exact:

- waypoints: the ego's future positions (every `DT_S`), in the ego frame of the last frame;
- occupancy: the fraction of each BEV cell (around the ego at the last frame) covered by a box.

Every sample is a pure function of (seed, index), so a data position is just an index.
"""

from __future__ import annotations

import math

import numpy as np

from cortex.training.config import FsdModel

DT_S = 0.5  # time between frames and between future waypoints
CAM_HEIGHT_M = 1.6
MAX_RANGE_M = 60.0  # ground farther than this renders as haze
LANE_W_M = 3.5
ROAD_HALF_M = 2 * LANE_W_M
EGO_D_M = -LANE_W_M / 2  # right-hand lane centre
LANE_CENTRES_M = (-1.5 * LANE_W_M, -0.5 * LANE_W_M, 0.5 * LANE_W_M, 1.5 * LANE_W_M)
BOX_HALF_LEN_M, BOX_HALF_WID_M = 2.25, 0.95
BEV_X_M = (-16.0, 32.0)  # BEV window in the ego frame: behind..ahead
BEV_Y_M = (-24.0, 24.0)  # right..left
WAYPOINT_SCALE_M = 10.0  # targets are divided by this so the loss is O(1)
SPEED_SCALE_MPS = 10.0

_SKY = np.array([0.55, 0.70, 0.90], dtype=np.float32)
_HAZE = np.array([0.70, 0.75, 0.78], dtype=np.float32)
_GRASS = np.array([0.20, 0.45, 0.20], dtype=np.float32)
_ROAD = np.array([0.35, 0.35, 0.37], dtype=np.float32)
_PAINT = np.array([0.95, 0.95, 0.90], dtype=np.float32)
_CAR_SAME = np.array([0.90, 0.15, 0.10], dtype=np.float32)
_CAR_ONCOMING = np.array([0.15, 0.25, 0.95], dtype=np.float32)


def _frenet(x: np.ndarray, y: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """World (x, y) → (s along the centreline arc, d to its left). The arc starts at the origin
    heading +x and bends left for radius > 0."""
    sgn = 1.0 if radius > 0 else -1.0
    ry = radius - y
    theta = np.arctan2(sgn * x, sgn * ry)
    return radius * theta, radius - sgn * np.hypot(x, ry)


def _pose(s: np.ndarray | float, d: float, radius: float) -> tuple[np.ndarray, ...]:
    """Frenet (s, d) → world x, y and heading."""
    th = np.asarray(s, dtype=np.float64) / radius
    x = radius * np.sin(th) - d * np.sin(th)
    y = radius * (1 - np.cos(th)) + d * np.cos(th)
    return x, y, th


def _dashed(s: np.ndarray) -> np.ndarray:
    """Irregular dashes (a hash of the 3 m segment index): periodic dashes would alias the
    ego's motion between frames."""
    k = np.floor(s / 3.0)
    return (np.sin(k * 12.9898) * 43758.5453) % 1.0 < 0.6


class _Cameras:
    """Ground-plane rays of every pixel of every camera, in the ego frame (precomputed once)."""

    def __init__(self, m: FsdModel) -> None:
        f = m.width / 2.0  # 90 degree horizontal field of view
        rows = np.arange(m.height) + 0.5 - m.height / 2.0
        cols = np.arange(m.width) + 0.5 - m.width / 2.0
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        below = rr > 0
        fwd = np.where(below, CAM_HEIGHT_M * f / np.where(below, rr, 1.0), np.inf)
        lat = -fwd * cc / f
        self.ground = below & (fwd < MAX_RANGE_M)
        self.sky = ~below
        yaws = 2 * math.pi * np.arange(m.cameras) / m.cameras
        fwd_c = np.where(self.ground, fwd, 0.0)
        lat_c = np.where(self.ground, lat, 0.0)
        # (cameras, H, W) ego-frame ground points
        self.ex = np.cos(yaws)[:, None, None] * fwd_c - np.sin(yaws)[:, None, None] * lat_c
        self.ey = np.sin(yaws)[:, None, None] * fwd_c + np.cos(yaws)[:, None, None] * lat_c


def bev_projection(m: FsdModel) -> tuple[np.ndarray, np.ndarray]:
    """Where each BEV cell centre appears in each camera, for the model's lift step.

    Returns `grid` (cameras, G*G, 2) in grid_sample's [-1, 1] image coordinates and `valid`
    (cameras, G*G): the cell lies on the ground in front of that camera, inside its image and
    within range. This is the inverse of the pinhole casting in `_Cameras`; the camera rig is
    known to the network, as calibration is known to a real car's."""
    g = m.bev_grid
    xs = BEV_X_M[1] - (np.arange(g) + 0.5) * (BEV_X_M[1] - BEV_X_M[0]) / g
    ys = BEV_Y_M[1] - (np.arange(g) + 0.5) * (BEV_Y_M[1] - BEV_Y_M[0]) / g
    bx, by = (a.ravel() for a in np.meshgrid(xs, ys, indexing="ij"))
    f = m.width / 2.0
    yaws = 2 * math.pi * np.arange(m.cameras) / m.cameras
    fwd = np.cos(yaws)[:, None] * bx + np.sin(yaws)[:, None] * by
    lat = -np.sin(yaws)[:, None] * bx + np.cos(yaws)[:, None] * by
    ahead = fwd > 0.5
    safe = np.where(ahead, fwd, 1.0)
    u = -lat * f / safe + m.width / 2.0
    v = CAM_HEIGHT_M * f / safe + m.height / 2.0
    valid = ahead & (fwd < MAX_RANGE_M) & (u >= 0) & (u < m.width) & (v < m.height)
    grid = np.stack([u / m.width * 2 - 1, v / m.height * 2 - 1], axis=-1)
    return np.where(valid[..., None], grid, 0.0).astype(np.float32), valid


class FsdGenerator:
    """Draws sample `index` of the stream seeded by `seed`."""

    def __init__(self, m: FsdModel, seed: int) -> None:
        self.m = m
        self.seed = seed
        self.cams = _Cameras(m)
        g = m.bev_grid
        sub = 3  # 3x3 sub-samples per cell give a soft occupancy fraction
        xs = BEV_X_M[0] + (np.arange(g * sub) + 0.5) * (BEV_X_M[1] - BEV_X_M[0]) / (g * sub)
        ys = BEV_Y_M[1] - (np.arange(g * sub) + 0.5) * (BEV_Y_M[1] - BEV_Y_M[0]) / (g * sub)
        # row = forward distance (far at top), col = lateral (left at left)
        self.bev_x, self.bev_y = np.meshgrid(xs[::-1], ys, indexing="ij")
        self.sub = sub

    def sample(self, index: int) -> dict[str, np.ndarray]:
        m = self.m
        rng = np.random.default_rng([self.seed, index])
        kappa = rng.uniform(1e-3, 0.03) * rng.choice([-1.0, 1.0])
        radius = 1.0 / kappa
        v = rng.uniform(4.0, 14.0)
        lanes = rng.integers(0, len(LANE_CENTRES_M), size=m.boxes)
        box_d = np.asarray(LANE_CENTRES_M)[lanes]
        box_v = np.where(
            box_d < 0, rng.uniform(3.0, 15.0, m.boxes), -rng.uniform(3.0, 15.0, m.boxes)
        )
        box_s0 = rng.uniform(-20.0, 45.0, m.boxes)
        same_lane = np.isclose(box_d, EGO_D_M)
        box_s0 = np.where(same_lane & (np.abs(box_s0) < 8.0), box_s0 + 16.0, box_s0)

        video = np.empty((m.frames, m.cameras, 3, m.height, m.width), dtype=np.float32)
        for t in range(m.frames):
            time_s = t * DT_S
            ego_s = v * time_s
            ex, ey, eth = _pose(ego_s, EGO_D_M, radius)
            c, s_ = math.cos(float(eth)), math.sin(float(eth))
            wx = ex + c * self.cams.ex - s_ * self.cams.ey
            wy = ey + s_ * self.cams.ex + c * self.cams.ey
            fs, fd = _frenet(wx, wy, radius)
            img = np.where((np.abs(fd) < ROAD_HALF_M)[..., None], _ROAD, _GRASS)
            paint = (np.abs(np.abs(fd) - ROAD_HALF_M) < 0.15) | (np.abs(fd) < 0.12)
            paint |= (np.abs(np.abs(fd) - LANE_W_M) < 0.12) & _dashed(fs)
            img[paint] = _PAINT
            for b in range(m.boxes):
                bs = box_s0[b] + box_v[b] * time_s
                hit = (np.abs(fs - bs) < BOX_HALF_LEN_M) & (np.abs(fd - box_d[b]) < BOX_HALF_WID_M)
                img[hit] = _CAR_SAME if box_d[b] < 0 else _CAR_ONCOMING
            img[:, ~self.cams.ground] = _HAZE
            img[:, self.cams.sky] = _SKY
            video[t] = img.transpose(0, 3, 1, 2)
        video += rng.normal(0.0, 0.02, size=video.shape).astype(np.float32)

        # Ground truth in the ego frame of the last frame.
        t_last = (m.frames - 1) * DT_S
        ex, ey, eth = _pose(v * t_last, EGO_D_M, radius)
        c, s_ = math.cos(float(eth)), math.sin(float(eth))
        fut_t = t_last + DT_S * np.arange(1, m.waypoints + 1)
        fx, fy, _ = _pose(v * fut_t, EGO_D_M, radius)
        dx, dy = fx - ex, fy - ey
        waypoints = np.stack([c * dx + s_ * dy, -s_ * dx + c * dy], axis=-1)

        wx = ex + c * self.bev_x - s_ * self.bev_y
        wy = ey + s_ * self.bev_x + c * self.bev_y
        fs, fd = _frenet(wx, wy, radius)
        occ = np.zeros(fs.shape, dtype=bool)
        for b in range(m.boxes):
            bs = box_s0[b] + box_v[b] * t_last
            occ |= (np.abs(fs - bs) < BOX_HALF_LEN_M) & (np.abs(fd - box_d[b]) < BOX_HALF_WID_M)
        g, k = m.bev_grid, self.sub
        occupancy = occ.reshape(g, k, g, k).mean(axis=(1, 3))
        speed = v + rng.normal(0.0, 0.1)  # wheel-speed reading, as vehicles report it
        return {
            "video": video,
            "speed": np.array([speed / SPEED_SCALE_MPS], dtype=np.float32),
            "waypoints": (waypoints / WAYPOINT_SCALE_M).astype(np.float32),
            "occupancy": occupancy.astype(np.float32),
        }
