"""The fsd network: shared image encoder → BEV grid by cross-attention → temporal fusion →
waypoint and occupancy heads (a small BEVFormer-style layout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812  (the PyTorch convention)
from torch import nn

from cortex.training.config import FsdModel
from cortex.training.data_fsd import bev_projection

# `large` at batch 64 fuses 64 x 1,024 = 65,536 cells over time in one attention call: on an
# H200 (torch 2.11) the cuDNN and flash kernels refused it in backward, as a CUDA grid dimension
# of at most 65,535 would, and ran at 32,768 (bench/RESULTS.md §81). Attention, norms and the
# MLP act per sequence here, so splitting the batch computes the same function.
_MAX_SEQUENCES = 32_768


class FsdNet(nn.Module):
    cell_uv: torch.Tensor  # buffers, declared for the type checker
    cell_seen: torch.Tensor

    def __init__(self, m: FsdModel) -> None:
        super().__init__()
        self.m = m
        c = m.enc_channels
        # Shared by every camera and frame; stride 8 turns each image into (H/8)*(W/8) tokens.
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * c, m.dim, 3, stride=2, padding=1),
        )
        tokens = (m.height // 8) * (m.width // 8)
        self.pix_pos = nn.Parameter(torch.randn(tokens, m.dim) * 0.02)
        self.cam_emb = nn.Parameter(torch.randn(m.cameras, m.dim) * 0.02)
        self.bev_queries = nn.Parameter(torch.randn(m.bev_grid * m.bev_grid, m.dim) * 0.02)
        grid, valid = bev_projection(m)
        # Not persistent: derived from the config, which the checkpoint already records.
        self.register_buffer("cell_uv", torch.from_numpy(grid), persistent=False)
        self.register_buffer("cell_seen", torch.from_numpy(valid).float(), persistent=False)
        self.ipm_proj = nn.Linear(m.dim, m.dim)
        self.speed_in = nn.Linear(1, m.dim)
        self.lift_norm = nn.LayerNorm(m.dim)
        self.lift = nn.MultiheadAttention(m.dim, m.heads, batch_first=True)
        self.lift_mlp = nn.Sequential(
            nn.LayerNorm(m.dim), nn.Linear(m.dim, 2 * m.dim), nn.GELU(), nn.Linear(2 * m.dim, m.dim)
        )
        self.time_emb = nn.Parameter(torch.randn(m.frames, m.dim) * 0.02)
        # Layers directly rather than nn.TransformerEncoder, whose nested-tensor fast path
        # warns with norm_first (and the tests run with warnings as errors).
        self.temporal = nn.ModuleList(
            nn.TransformerEncoderLayer(
                m.dim, m.heads, 2 * m.dim, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(m.temporal_layers)
        )
        occ_out = nn.Linear(m.dim, 1)
        self.occ_head = nn.Sequential(nn.LayerNorm(m.dim), occ_out)
        self.wp_head = nn.Sequential(
            nn.LayerNorm(m.dim),
            nn.Linear(m.dim, 2 * m.dim),
            nn.GELU(),
            nn.Linear(2 * m.dim, 2 * m.waypoints),
        )
        # Start occupancy near its prior (about 2% of cells are covered) rather than at 50%:
        # otherwise the first hundred steps only learn that the road is mostly empty.
        nn.init.constant_(occ_out.bias, -4.0)

    def forward(
        self, video: torch.Tensor, speed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """video (B, T, C, 3, H, W), speed (B, 1) → waypoints (B, K, 2) and occupancy
        logits (B, G, G)."""
        m = self.m
        b, t, cams = video.shape[:3]
        feats = self.encoder(video.flatten(0, 2))  # (B*T*C, D, h, w)
        tokens = feats.flatten(2).transpose(1, 2) + self.pix_pos  # (B*T*C, h*w, D)
        tokens = tokens.unflatten(0, (b * t, cams)) + self.cam_emb[:, None]
        tokens = tokens.flatten(1, 2)  # (B*T, C*h*w, D): every camera of one frame
        # Lift 1: sample every camera's features where each BEV cell projects (inverse
        # perspective), averaged over the cameras that see the cell. This gives the queries a
        # geometric prior; the cross-attention below refines it (BEVFormer samples at projected
        # reference points for the same reason).
        grid = self.cell_uv.repeat(b * t, 1, 1)[:, :, None]  # (B*T*C, G*G, 1, 2)
        sampled = F.grid_sample(feats, grid.to(feats.dtype), align_corners=False)
        sampled = sampled.squeeze(-1).unflatten(0, (b * t, cams))  # (B*T, C, D, G*G)
        w = self.cell_seen[None, :, None, :]
        ipm = (sampled * w).sum(1) / w.sum(1).clamp(min=1.0)  # (B*T, D, G*G)
        q = self.bev_queries + self.ipm_proj(ipm.transpose(1, 2))
        kv = self.lift_norm(tokens)
        bev = q + self.lift(q, kv, kv, need_weights=False)[0]
        bev = bev + self.lift_mlp(bev)  # (B*T, G*G, D)
        bev = bev.unflatten(0, (b, t)) + self.time_emb[:, None]
        x = bev.transpose(1, 2).flatten(0, 1)  # (B*G*G, T, D): attention over time per cell
        for layer in self.temporal:
            if x.shape[0] <= _MAX_SEQUENCES:
                x = layer(x)
            else:
                x = torch.cat([layer(part) for part in x.split(_MAX_SEQUENCES)])
        cur = x[:, -1].unflatten(0, (b, m.bev_grid * m.bev_grid))  # (B, G*G, D)
        occ = self.occ_head(cur).squeeze(-1).unflatten(1, (m.bev_grid, m.bev_grid))
        pooled = cur.mean(dim=1) + self.speed_in(speed)
        wps = self.wp_head(pooled).unflatten(1, (m.waypoints, 2))
        return wps, occ


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy of soft targets: the floor of their cross-entropy."""
    q = p.clamp(1e-6, 1 - 1e-6)
    return -(p * q.log() + (1 - p) * (1 - q).log()).mean()


def fsd_losses(
    out: tuple[torch.Tensor, torch.Tensor], batch: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Waypoint MSE plus occupancy KL. Occupancy targets are soft (the covered fraction of a
    cell), so their cross-entropy never reaches 0; subtracting the targets' entropy (a constant,
    same gradients) makes a perfect prediction score 0 and the ratio to the baseline meaningful."""
    wps, occ = out
    wp = F.mse_loss(wps.float(), batch["waypoints"])
    target = batch["occupancy"]
    oc = F.binary_cross_entropy_with_logits(occ.float(), target) - _entropy(target)
    return {"loss": wp + oc, "waypoint_mse": wp, "occupancy_kl": oc}


def fsd_constant_output(
    means: dict[str, torch.Tensor], batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a predictor that ignores its input outputs: the mean targets (see baseline.py)."""
    wps = means["waypoints"].expand(batch_size, *means["waypoints"].shape)
    occ = torch.logit(means["occupancy"].clamp(1e-4, 1 - 1e-4))
    return wps, occ.expand(batch_size, *occ.shape)
