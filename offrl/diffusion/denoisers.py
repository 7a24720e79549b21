"""Networks f(x, noise_level, cond) for low-dimensional samples (actions), and noise-level features.

A denoiser maps a noisy sample ``x`` (..., dim), a noise level (a scalar or one value per leading index
of ``x``) and an optional condition to a tensor shaped like ``x``. What the noise level and the output
mean is up to the machinery: the step index t and the predicted noise for DDPM (``ddpm.py``), c_noise(sigma)
and the preconditioned network output for EDM (``edm.py``), the time t in [0, 1] and the velocity for flow
matching (``flow.py``).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from offrl.core.nets import mlp
from offrl.diffusion.schedules import left_align


class FourierFeatures(nn.Module):
    """Learnable Gaussian Fourier features of a scalar: (..., 1) -> (..., out_dim),
    [cos(2 pi v w), sin(2 pi v w)] with w ~ N(0, std^2) (EXPO: 64 + 64 features, std 0.2; docs/algorithms/expo.md)."""

    def __init__(self, out_dim: int = 128, std: float = 0.2) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(out_dim // 2) * std)

    def forward(self, v: Tensor) -> Tensor:
        f = 2 * math.pi * v * self.w
        return torch.cat([f.cos(), f.sin()], dim=-1)


class SinusoidalEmbedding(nn.Module):
    """Fixed transformer-style features of a scalar: (...,) -> (..., dim), sin and cos at dim / 2
    geometrically spaced frequencies from 1 down to 1 / max_period."""

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False)

    def forward(self, v: Tensor) -> Tensor:
        f = v[..., None] * self.freqs
        return torch.cat([f.sin(), f.cos()], dim=-1)


class ResidualBlock(nn.Module):
    """h + Dense(swish(Dense(LayerNorm(dropout(h))))) (EXPO's MLP-ResNet block)."""

    def __init__(self, width: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.LayerNorm(width), nn.Linear(width, hidden), nn.SiLU(),
                                 nn.Linear(hidden, width))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


class MLPResNetDenoiser(nn.Module):
    """EXPO's base-policy network (docs/algorithms/expo.md#the-base-policy), f(x, noise_level, cond) -> (..., x_dim).

    Input concat(x, cond, c(level)) with c = Dense(time_hidden) o swish o Dense(time_hidden) o Fourier(time_features);
    trunk Dense(hidden) -> ``num_blocks`` residual blocks (inner width ``block_hidden``) -> swish -> Dense(x_dim);
    Xavier-uniform weights, zero biases. ``cond`` broadcasts against x's leading dims, e.g. observations
    (E, 1, obs_dim) for N candidate actions (E, N, act_dim) each. ``time_std`` (init scale of the Fourier
    frequencies) 0.2 suits EXPO's integer steps 0..T-1; EDM's c_noise = ln(sigma) / 4 spans only a few units
    and learns better with a larger one (1.0 in the tests).
    """

    output_layers = ("out",)  # computed in fp32 under bf16 autocast (offrl.core.precision)

    def __init__(self, x_dim: int, cond_dim: int = 0, hidden: int = 256, num_blocks: int = 3,
                 block_hidden: int = 1024, time_features: int = 128, time_hidden: int = 256,
                 time_std: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        self.time = nn.Sequential(FourierFeatures(time_features, time_std), nn.Linear(time_features, time_hidden),
                                  nn.SiLU(), nn.Linear(time_hidden, time_hidden))
        self.inp = nn.Linear(x_dim + cond_dim + time_hidden, hidden)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden, block_hidden, dropout) for _ in range(num_blocks)))
        self.out = nn.Linear(hidden, x_dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, noise_level: Tensor, cond: Tensor | None = None) -> Tensor:
        level = left_align(noise_level, x).expand(*x.shape[:-1], 1)
        parts = [x, self.time(level)]
        if cond is not None:
            parts.insert(1, cond.expand(*x.shape[:-1], cond.shape[-1]))
        return self.out(F.silu(self.blocks(self.inp(torch.cat(parts, dim=-1)))))


class MLPVelocity(nn.Module):
    """A plain MLP f(x, t, cond) = MLP(concat(cond, x, t)) -> (..., x_dim), FQL's velocity field (its
    ``ActorVectorField``): the time t in [0, 1] enters as one raw input, no embedding; tanh-approximated GELU
    after each hidden layer, Xavier-uniform weights and zero biases (flax's ``nn.gelu`` and the official
    ``default_init``). With ``time_input=False`` the noise level is ignored (pass None) and the input is
    concat(cond, x): FQL's one-step policy mu(s, z), the same network without t. ``cond`` broadcasts against
    x's leading dims; the noise level is a scalar or one value per leading index of x."""

    def __init__(self, x_dim: int, cond_dim: int = 0, hidden: list[int] | tuple[int, ...] = (512, 512, 512, 512),
                 time_input: bool = True) -> None:
        super().__init__()
        self.time_input = time_input
        gelu = functools.partial(nn.GELU, approximate="tanh")
        self.net = mlp(cond_dim + x_dim + int(time_input), x_dim, hidden, activation=gelu)
        for m in self.net.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, noise_level: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        parts = [x]
        if cond is not None:
            parts.insert(0, cond.expand(*x.shape[:-1], cond.shape[-1]))
        if self.time_input:
            parts.append(left_align(torch.as_tensor(noise_level, dtype=x.dtype, device=x.device), x)
                         .expand(*x.shape[:-1], 1))
        return self.net(torch.cat(parts, dim=-1))
