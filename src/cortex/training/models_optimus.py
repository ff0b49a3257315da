"""The optimus policy: a transformer over [proprioception token, camera patch tokens, action
queries]; each query's output is one future joint-position target (behavior cloning)."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812  (the PyTorch convention)
from torch import nn

from cortex.training.config import OptimusModel


class OptimusNet(nn.Module):
    def __init__(self, m: OptimusModel) -> None:
        super().__init__()
        self.m = m
        patches = (m.image // m.patch) ** 2
        self.patchify = nn.Conv2d(3, m.dim, m.patch, stride=m.patch)
        self.proprio_in = nn.Linear(3 * m.joints, m.dim)
        self.pos = nn.Parameter(torch.randn(1 + patches + m.chunk, m.dim) * 0.02)
        self.queries = nn.Parameter(torch.randn(m.chunk, m.dim) * 0.02)
        # A ModuleList, not nn.TransformerEncoder: see models_fsd.py.
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                m.dim, m.heads, 4 * m.dim, dropout=m.dropout, batch_first=True, norm_first=True
            )
            for _ in range(m.layers)
        )
        self.norm = nn.LayerNorm(m.dim)
        self.head = nn.Linear(m.dim, m.joints)

    def forward(self, image: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """image (B, 3, S, S), proprio (B, 3n) → joint targets (B, chunk, n)."""
        b = image.shape[0]
        cam = self.patchify(image).flatten(2).transpose(1, 2)
        x = torch.cat(
            [self.proprio_in(proprio)[:, None], cam, self.queries.expand(b, -1, -1)], dim=1
        )
        x = x + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x[:, -self.m.chunk :]))


def optimus_losses(out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    loss = F.mse_loss(out.float(), batch["action"])
    return {"loss": loss}


def optimus_constant_output(means: dict[str, torch.Tensor], batch_size: int) -> torch.Tensor:
    """What a predictor that ignores its input outputs: the mean action (see baseline.py)."""
    return means["action"].expand(batch_size, *means["action"].shape)
