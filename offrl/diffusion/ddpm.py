"""DDPM with epsilon prediction: training loss and ancestral sampling (docs/algorithms/expo.md#the-base-policy).

``eps_net(x_t, t, cond)`` is any denoiser (see ``denoisers.py``) that takes the step index t (0..T-1, as a float
tensor) as its noise level and predicts the noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from offrl.diffusion.schedules import DDPMSchedule


def ddpm_loss(eps_net: nn.Module, schedule: DDPMSchedule, x0: Tensor, cond: Tensor | None = None,
              generator: torch.Generator | None = None) -> Tensor:
    """mean over samples of sum over the last dim of (eps_net(x_t, t, cond) - eps)^2, with one
    t ~ Uniform{0..T-1} per row of x0's first dim and eps ~ N(0, I) (the generator, if any, on x0's device)."""
    t = torch.randint(schedule.T, x0.shape[:1], device=x0.device, generator=generator)
    eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_t = schedule.q_sample(x0, t, eps)
    return (eps_net(x_t, t.to(x0.dtype), cond) - eps).pow(2).sum(-1).mean()


@torch.no_grad()
def ddpm_sample(eps_net: nn.Module, schedule: DDPMSchedule, shape: Sequence[int], cond: Tensor | None = None,
                generator: torch.Generator | None = None, clip: bool = True, temperature: float = 1.0) -> Tensor:
    """Ancestral sampling on the schedule's device (the generator must live there too): x_T ~ N(0, I), then for
    t = T-1..0: x <- (x - (1 - alpha_t) / sqrt(1 - alpha_bar_t) eps_net(x, t, cond)) / sqrt(alpha_t)
    + [t > 0] sqrt(beta_t) temperature z, clipped to [-1, 1] after every step when ``clip`` (EXPO's
    ``clip_sampler``). Any batch shape works, e.g. (num_envs * N, act_dim) or (num_envs, N, act_dim) with
    cond (num_envs, 1, obs_dim)."""
    s = schedule
    device = s.betas.device
    x = torch.randn(tuple(shape), device=device, generator=generator)
    steps = torch.arange(s.T, device=device, dtype=x.dtype)
    eps_coef = (1.0 - s.alphas) / (1.0 - s.alpha_bars).sqrt()
    for t in reversed(range(s.T)):
        x = (x - eps_coef[t] * eps_net(x, steps[t], cond)) / s.alphas[t].sqrt()
        if t > 0:
            x = x + s.betas[t].sqrt() * temperature * torch.randn(x.shape, device=device, generator=generator)
        if clip:
            x = x.clamp(-1.0, 1.0)
    return x
