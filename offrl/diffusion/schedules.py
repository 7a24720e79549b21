"""Noise schedules: discrete DDPM / variance-preserving betas and the EDM (Karras) sigma ladder."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def vp_betas(T: int = 10, b_min: float = 0.1, b_max: float = 10.0) -> Tensor:
    """EXPO's variance-preserving schedule (docs/algorithms/expo.md#the-base-policy), t = 1..T:
    beta_t = 1 - exp(-b_min / T - (b_max - b_min) (2t - 1) / (2 T^2)), so that
    alpha_bar_t = exp(-b_min t / T - (b_max - b_min) t^2 / (2 T^2)) (the VP-SDE integrated to t / T)."""
    t = torch.arange(1, T + 1, dtype=torch.float64)
    return 1.0 - torch.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / T**2)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal's cosine schedule: alpha_bar_t = f(t) / f(0), f(t) = cos^2((t / T + s) / (1 + s) pi / 2),
    with each beta_t capped at ``max_beta``."""
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    return (1.0 - f[1:] / f[:-1]).clamp(max=max_beta)


def left_align(v: Tensor, x: Tensor) -> Tensor:
    """View ``v``, whose shape is a prefix of ``x.shape`` (or a scalar), so that it broadcasts against ``x``:
    one noise level per leading index."""
    return v.reshape(v.shape + (1,) * (x.dim() - v.dim()))


class DDPMSchedule(nn.Module):
    """A discrete diffusion of T steps, indexed t = 0..T-1 (index t is step t + 1 of the paper).

    Holds betas, alphas = 1 - betas and alpha_bars = cumprod(alphas) as float32 buffers, so the schedule
    follows its owner's ``.to(device)``; they are not saved in state dicts (they are a function of the
    constructor arguments).
    """

    def __init__(self, betas: Tensor) -> None:
        super().__init__()
        alphas = 1.0 - betas.double()
        alpha_bars = torch.cumprod(alphas, 0)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas", alphas.float(), persistent=False)
        self.register_buffer("alpha_bars", alpha_bars.float(), persistent=False)

    @classmethod
    def vp(cls, T: int = 10, b_min: float = 0.1, b_max: float = 10.0) -> DDPMSchedule:
        return cls(vp_betas(T, b_min, b_max))

    @classmethod
    def cosine(cls, T: int, s: float = 0.008) -> DDPMSchedule:
        return cls(cosine_betas(T, s))

    @property
    def T(self) -> int:
        return len(self.betas)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps. ``t`` (integer) indexes the leading dims
        of ``x0`` (shape x0.shape[:k] for some k, or a scalar)."""
        abar = left_align(self.alpha_bars[t], x0)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """EDM noise levels (float64, on the CPU), defaults from docs/algorithms/pgd.md#configuration:
    sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for i < N, sigma_N = 0."""
    i = torch.arange(num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + i / max(num_steps - 1, 1) * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])
