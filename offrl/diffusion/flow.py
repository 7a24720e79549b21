"""Flow matching on the linear (rectified-flow) path: training loss and Euler sampling (docs/algorithms/fql.md).

A velocity network ``velocity_net(x_t, t, cond)`` is any denoiser (see ``denoisers.py``) that takes the time
t in [0, 1] as its noise level and predicts the velocity dx/dt. Noise x0 ~ N(0, I) sits at t = 0, data x1 at t = 1:

    x_t = (1 - t) x0 + t x1,   target velocity x1 - x0,   x_{k+1} = x_k + v(x_k, k / K, cond) / K.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from offrl.diffusion.schedules import left_align


def flow_matching_loss(velocity_net: nn.Module, x1: Tensor, cond: Tensor | None = None, x0: Tensor | None = None,
                       t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """mean over samples and coordinates of (velocity_net(x_t, t, cond) - (x1 - x0))^2 on the path
    x_t = (1 - t) x0 + t x1: the squared error is averaged over the last dim, as FQL's code does (jnp.mean over
    the batch and the action dims), where ``ddpm_loss`` sums it.

    ``x1`` (..., N, dim): N samples; the mean runs over the last two dims, so the result has shape ``x1.shape[:-2]``
    (a scalar for (N, dim); one loss per seed for (K, N, dim)). ``x0`` (shaped like x1) and ``t`` (x1.shape[:-1],
    one time per sample) are drawn here when not given: x0 ~ N(0, I), t ~ U[0, 1], from ``generator`` (on x1's
    device) if any. An agent passes its own draws (``Agent.noise_like``), so that no draw happens in its update's
    captured region, and tests pass known values."""
    if x0 is None:
        x0 = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
    if t is None:
        t = torch.rand(x1.shape[:-1], device=x1.device, dtype=x1.dtype, generator=generator)
    tx = left_align(t, x1)
    x_t = (1.0 - tx) * x0 + tx * x1
    return (velocity_net(x_t, t, cond) - (x1 - x0)).pow(2).mean(dim=(-2, -1))


def euler_sample(velocity_net: nn.Module, x0: Tensor, cond: Tensor | None, steps: int,
                 differentiable: bool = False) -> Tensor:
    """Integrate dx/dt = velocity_net(x, t, cond) from x0 at t = 0 to t = 1 in ``steps`` Euler steps:
    x_{k+1} = x_k + velocity_net(x_k, k / steps, cond) / steps, k = 0..steps-1. Deterministic given x0; any
    leading shape (one time per leading index). No gradient flows unless ``differentiable`` (FQL's distillation
    target is computed without one). No clipping here: FQL clips the result to [-1, 1] itself."""
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        x = x0
        for k in range(steps):
            t = x.new_full(x.shape[:-1], k / steps)
            x = x + velocity_net(x, t, cond) / steps
        return x
