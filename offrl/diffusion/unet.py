"""A 1-D temporal U-Net over (B, horizon, channels) trajectories: PGD's denoiser (docs/algorithms/pgd.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from offrl.diffusion.denoisers import SinusoidalEmbedding


def _conv_norm(in_ch: int, out_ch: int, kernel: int, groups: int) -> tuple[nn.Conv1d, nn.GroupNorm]:
    """A length-preserving convolution (odd kernel) or one to be right-padded by 1 (kernel 2), and its GroupNorm."""
    return nn.Conv1d(in_ch, out_ch, kernel, padding=kernel // 2 if kernel % 2 else 0), nn.GroupNorm(groups, out_ch)


class _Down(nn.Module):
    """Conv3 -> + Dense(emb) -> GN -> ReLU -> Conv3 -> GN -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.conv1, self.norm1 = _conv_norm(in_ch, out_ch, 3, groups)
        self.conv2, self.norm2 = _conv_norm(out_ch, out_ch, 3, groups)
        self.emb = nn.Linear(emb_dim, out_ch)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = F.relu(self.norm1(self.conv1(x) + self.emb(emb)[..., None]))
        return F.relu(self.norm2(self.conv2(x)))


class _Up(nn.Module):
    """Nearest upsample to the skip's length -> Conv2 -> + Dense(emb) -> GN -> ReLU -> concat skip
    -> (Conv3 -> GN -> ReLU) x 2."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.conv0, self.norm0 = _conv_norm(in_ch, out_ch, 2, groups)
        self.conv1, self.norm1 = _conv_norm(2 * out_ch, out_ch, 3, groups)
        self.conv2, self.norm2 = _conv_norm(out_ch, out_ch, 3, groups)
        self.emb = nn.Linear(emb_dim, out_ch)

    def forward(self, x: Tensor, skip: Tensor, emb: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-1], mode="nearest")
        x = F.relu(self.norm0(self.conv0(F.pad(x, (0, 1))) + self.emb(emb)[..., None]))
        x = F.relu(self.norm1(self.conv1(torch.cat([x, skip], dim=1))))
        return F.relu(self.norm2(self.conv2(x)))


class TemporalUNet(nn.Module):
    """f(x, noise_level, cond) -> (B, horizon, channels) for x of shape (B, horizon, channels).

    Level i has width ``features * 2^i`` (``num_levels`` levels, max-pool by 2 between levels, so the horizon
    must be at least 2^(num_levels - 1); any such length works, odd ones included). The noise level goes
    through sinusoidal features (dim features / 4) -> Dense(features) -> swish -> Dense(features); with
    ``cond_dim`` > 0 a Dense(cond) is added to that embedding. PGD uses features = 1024, 3 levels and
    GroupNorm(8) (docs/algorithms/pgd.md#configuration); the small default is for tests and CPU runs.
    """

    def __init__(self, channels: int, features: int = 64, num_levels: int = 3, groups: int = 8,
                 cond_dim: int = 0) -> None:
        super().__init__()
        widths = [features * 2**i for i in range(num_levels)]
        self.embed = nn.Sequential(SinusoidalEmbedding(features // 4), nn.Linear(features // 4, features),
                                   nn.SiLU(), nn.Linear(features, features))
        self.cond = nn.Linear(cond_dim, features) if cond_dim > 0 else None
        self.down = nn.ModuleList(_Down(i, o, features, groups) for i, o in zip([channels, *widths], widths))
        self.up = nn.ModuleList(_Up(widths[i + 1], widths[i], features, groups)
                                for i in reversed(range(num_levels - 1)))
        self.out = nn.Conv1d(widths[0], channels, 1)

    def forward(self, x: Tensor, noise_level: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.embed(noise_level.expand(x.shape[0]))
        if self.cond is not None:
            emb = emb + self.cond(cond)
        h, skips = x.transpose(1, 2), []
        for i, block in enumerate(self.down):
            if i > 0:
                h = F.max_pool1d(h, 2)
            h = block(h, emb)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = block(h, skip, emb)
        return self.out(h).transpose(1, 2)
