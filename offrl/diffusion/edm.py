"""EDM (Karras et al. 2022): preconditioning, training loss and the stochastic Heun sampler with optional
guidance restricted to some channels (Policy-Guided Diffusion, docs/algorithms/pgd.md#guided-sampling)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain

import torch
from torch import Tensor, nn

from offrl.diffusion.schedules import karras_sigmas, left_align

# guidance(x, sigma) -> a tensor shaped like x, added (scaled, masked) to the noisy sample before each step
Guidance = Callable[[Tensor, Tensor], Tensor]


def edm_preconditioning(sigma: Tensor, sigma_data: float = 1.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) = (sd^2 / (sigma^2 + sd^2), sigma sd / sqrt(sigma^2 + sd^2),
    1 / sqrt(sigma^2 + sd^2), ln(sigma) / 4)."""
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), total.rsqrt(), sigma.log() / 4


class EDMPrecond(nn.Module):
    """D(x; sigma, cond) = c_skip x + c_out F(c_in x, c_noise, cond) around any denoiser network F
    (``MLPResNetDenoiser``, ``TemporalUNet``). sigma: a scalar or one value per leading index of x."""

    def __init__(self, net: nn.Module, sigma_data: float = 1.0) -> None:
        super().__init__()
        self.net, self.sigma_data = net, sigma_data

    def forward(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, self.sigma_data)
        c_skip, c_out, c_in = (left_align(c, x) for c in (c_skip, c_out, c_in))
        return c_skip * x + c_out * self.net(c_in * x, c_noise, cond)


def edm_loss(model: EDMPrecond, x0: Tensor, cond: Tensor | None = None, p_mean: float = -1.2, p_std: float = 1.2,
             generator: torch.Generator | None = None) -> Tensor:
    """mean over all elements of w(sigma) (D(x0 + sigma eps; sigma) - x0)^2 with w = (sigma^2 + sd^2) / (sigma sd)^2
    and one ln sigma ~ N(p_mean, p_std^2) per row of x0's first dim (PGD: p_mean -1.2, p_std 1.2)."""
    sigma = (p_mean + p_std * torch.randn(x0.shape[:1], device=x0.device, dtype=x0.dtype, generator=generator)).exp()
    s = left_align(sigma, x0)
    x_noisy = x0 + s * torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    weight = (s**2 + model.sigma_data**2) / (s * model.sigma_data) ** 2
    return (weight * (model(x_noisy, sigma, cond) - x0).pow(2)).mean()


def pgd_guidance_scales(num_steps: int, coef: float, cos_coef: float = 0.3) -> list[float]:
    """PGD's guidance strength per sampler step (docs/algorithms/pgd.md#guided-sampling):
    lambda_i = coef ((1 - i / N) + cos_coef sin(pi (i + 1) / N)) for i < N - 1, and 0 at the last step."""
    n = num_steps
    return [coef * ((1 - i / n) + cos_coef * math.sin(math.pi * (i + 1) / n)) if i < n - 1 else 0.0 for i in range(n)]


def score_guidance(log_prob: Callable[[Tensor], Tensor]) -> Guidance:
    """Guidance by the gradient of a log-density: (x, sigma) -> grad_x sum(log_prob(x)). ``log_prob`` sees the
    noisy sample itself (PGD decodes observations and actions from it and scores the agent's policy)."""

    def guidance(x: Tensor, sigma: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            return torch.autograd.grad(log_prob(x).sum(), x)[0]

    return guidance


@dataclass
class HeunSampler:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2) on the ``karras_sigmas`` ladder; defaults are
    PGD's (docs/algorithms/pgd.md). Churn gamma_i = min(s_churn / N, sqrt(2) - 1) where s_tmin <= sigma_i <= s_tmax."""

    num_steps: int = 256
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    s_churn: float = 80.0
    s_tmin: float = 0.05
    s_tmax: float = 50.0
    s_noise: float = 1.003
    heun: bool = True  # 2nd-order correction on every step but the last (to sigma = 0)

    @torch.no_grad()
    def sample(self, denoiser: nn.Module, shape: Sequence[int], cond: Tensor | None = None,
               guidance: Guidance | None = None, guidance_scales: Sequence[float] | None = None,
               guidance_mask: Tensor | None = None, generator: torch.Generator | None = None,
               on_step: Callable[[], None] | None = None) -> Tensor:
        """Samples of ``shape`` from D(x, sigma, cond) (e.g. an ``EDMPrecond``), on the denoiser's device (where the
        generator must live too).

        With ``guidance``, before step i: x <- x + guidance_scales[i] * guidance_mask * guidance(x, sigma_i);
        scales default to 1, the mask (broadcast against x, e.g. (channels,) with ones on the action
        channels) to all ones. ``guidance=None`` samples unguided. ``on_step`` is called after each step (progress).
        """
        device = next(chain(denoiser.parameters(), denoiser.buffers()), torch.empty(0)).device
        n = self.num_steps
        sigmas = karras_sigmas(n, self.sigma_min, self.sigma_max, self.rho).tolist()
        gamma = min(self.s_churn / n, math.sqrt(2) - 1)
        hats = [s * (1 + gamma) if self.s_tmin <= s <= self.s_tmax else s for s in sigmas[:-1]]
        sigma_t, hat_t = torch.tensor([sigmas, [*hats, 0.0]], device=device)  # noise levels as network inputs
        scales = [1.0] * n if guidance_scales is None else guidance_scales
        mask = 1.0 if guidance_mask is None else guidance_mask.to(device, torch.float32)

        x = sigmas[0] * torch.randn(tuple(shape), device=device, generator=generator)
        for i in range(n):
            if guidance is not None and scales[i] != 0:
                x = x + scales[i] * mask * guidance(x, sigma_t[i])
            s, s_hat, s_next = sigmas[i], hats[i], sigmas[i + 1]
            if s_hat > s:
                x = x + math.sqrt(s_hat**2 - s**2) * self.s_noise * torch.randn(x.shape, device=device,
                                                                                generator=generator)
            d = (x - denoiser(x, hat_t[i], cond)) / s_hat
            x_next = x + (s_next - s_hat) * d
            if self.heun and s_next > 0:
                d_next = (x_next - denoiser(x_next, sigma_t[i + 1], cond)) / s_next
                x_next = x + (s_next - s_hat) * 0.5 * (d + d_next)
            x = x_next
            if on_step is not None:
                on_step()
        return x
