"""The diffusion block: schedules, DDPM and EDM machinery, denoiser networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from offrl.diffusion import (
    DDPMSchedule,
    EDMPrecond,
    HeunSampler,
    MLPResNetDenoiser,
    TemporalUNet,
    ddpm_loss,
    ddpm_sample,
    edm_loss,
    edm_preconditioning,
    karras_sigmas,
    pgd_guidance_scales,
    score_guidance,
)

torch.set_num_threads(1)

MODES = torch.tensor([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
WEIGHTS = torch.tensor([0.4, 0.3, 0.2, 0.1])
MODE_STD = 0.08


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mixture(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Samples of the 4-mode mixture and their mode index."""
    k = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    return MODES[k] + MODE_STD * torch.randn(n, 2, generator=g), k


def check_mixture(x: Tensor, modes: Tensor, weight_tol: float = 0.04, mean_tol: float = 0.04,
                  std_tol: float = 0.45) -> None:
    """Mode weights within ``weight_tol``, per-mode means within ``mean_tol`` and stds within ``std_tol`` (relative)
    of the truth, and few samples off the modes (a unimodal or mode-dropping sampler fails all of these)."""
    dist = torch.cdist(x, modes)
    k = dist.argmin(1)
    assert (dist.min(1).values > 4 * MODE_STD).float().mean() < 0.06
    weights = torch.bincount(k, minlength=4).float() / len(x)
    assert (weights - WEIGHTS).abs().max() < weight_tol, weights
    for j in range(4):
        xj = x[k == j]
        assert (xj.mean(0) - modes[j]).abs().max() < mean_tol, xj.mean(0)
        assert ((xj.std(0) / MODE_STD - 1).abs() < std_tol).all(), xj.std(0)


def train(model: nn.Module, loss_fn, steps: int = 1500, lr: float = 3e-3) -> None:
    """Adam with a cosine decay to 0."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()


class GaussianDenoiser(nn.Module):
    """The exact EDM denoiser of N(mu, diag(s^2)): D(x; sigma) = E[x0 | x] = (s^2 x + sigma^2 mu) / (s^2 + sigma^2)."""

    def __init__(self, mu: Tensor, s: Tensor) -> None:
        super().__init__()
        self.register_buffer("mu", mu)
        self.register_buffer("s", s)

    def forward(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        return (self.s**2 * x + sigma**2 * self.mu) / (self.s**2 + sigma**2)


# ---------------------------------------------------------------- schedules

def test_vp_schedule_matches_closed_form_and_cosine_schedule_its_definition():
    T, b_min, b_max = 10, 0.1, 10.0
    vp = DDPMSchedule.vp(T, b_min, b_max)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    expected = torch.exp(-b_min * t / T - 0.5 * (b_max - b_min) * t**2 / T**2)  # the VP SDE integrated to t / T
    torch.testing.assert_close(vp.alpha_bars.double(), expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(vp.alphas, 1 - vp.betas)
    assert vp.T == T and (vp.betas > 0).all() and (vp.betas[1:] > vp.betas[:-1]).all()

    cos = DDPMSchedule.cosine(100)
    f = torch.cos((torch.arange(101) / 100 + 0.008) / 1.008 * math.pi / 2) ** 2
    torch.testing.assert_close(cos.alpha_bars[:-1], (f[1:] / f[0])[:-1].float(), rtol=1e-4, atol=1e-6)


def test_q_sample_has_the_schedule_marginals():
    schedule, n = DDPMSchedule.vp(10), 200_000
    x0 = torch.tensor([0.7, -0.3]).expand(n, 2)
    g = gen(0)
    for t in range(10):
        xt = schedule.q_sample(x0, torch.full((n,), t), torch.randn(n, 2, generator=g))
        abar = schedule.alpha_bars[t]
        var = 1 - abar
        assert ((xt.mean(0) - abar.sqrt() * x0[0]).abs() < 4 * (var / n).sqrt()).all()
        assert ((xt.var(0) / var - 1).abs() < 0.02).all()


def test_karras_sigmas():
    sigmas = karras_sigmas(5, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert len(sigmas) == 6 and sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[4].item() == pytest.approx(0.002)
    assert (sigmas[1:] < sigmas[:-1]).all()
    mid = ((80.0 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7  # i = 2 of N = 5 is halfway in sigma^(1/rho)
    assert sigmas[2].item() == pytest.approx(mid)


# ---------------------------------------------------------------- DDPM

def small_mlp(cond_dim: int = 0, time_std: float = 0.2) -> MLPResNetDenoiser:
    return MLPResNetDenoiser(2, cond_dim, hidden=64, num_blocks=2, block_hidden=128, time_features=32, time_hidden=64,
                             time_std=time_std)


class MixtureEps(nn.Module):
    """The exact noise predictor of the mixture under a DDPM schedule: eps*(x_t, t) = -sqrt(1 - abar_t) grad log p_t,
    p_t = sum_k w_k N(sqrt(abar_t) m_k, (abar_t s^2 + 1 - abar_t) I)."""

    def __init__(self, schedule: DDPMSchedule) -> None:
        super().__init__()
        self.schedule = schedule

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        abar = self.schedule.alpha_bars[t.long()]
        var = abar * MODE_STD**2 + 1 - abar
        diff = x[..., None, :] - abar.sqrt() * MODES  # (..., K, 2)
        resp = (WEIGHTS.log() - 0.5 * diff.pow(2).sum(-1) / var).softmax(-1)
        return (1 - abar).sqrt() * (resp[..., None] * diff).sum(-2) / var


def test_ddpm_ancestral_sampler_with_the_exact_noise_predictor_samples_the_mixture():
    """Exact at fine discretisation; EXPO's T = 10 keeps the modes and their weights but widens narrow modes
    (the sampler's noise variance beta_t exceeds the posterior's)."""
    schedule = DDPMSchedule.vp(100)
    check_mixture(ddpm_sample(MixtureEps(schedule), schedule, (8000, 2), generator=gen(0)), MODES,
                  weight_tol=0.02, std_tol=0.06)
    coarse = DDPMSchedule.vp(10)
    x = ddpm_sample(MixtureEps(coarse), coarse, (8000, 2), generator=gen(0))
    weights = torch.bincount(torch.cdist(x, MODES).argmin(1), minlength=4).float() / len(x)
    assert (weights - WEIGHTS).abs().max() < 0.05


def test_ddpm_learns_a_conditional_gaussian_mixture():
    """Condition c = +1: the 4-mode mixture; c = -1: its mirror image -x (same weights on mirrored modes). Over
    seeds the small net's modes come out 10-50% too wide and up to 0.045 off, hence the wider tolerances."""
    torch.manual_seed(0)
    schedule, net, g = DDPMSchedule.vp(50), small_mlp(cond_dim=1), gen(1)

    def loss() -> Tensor:
        c = torch.randint(2, (512, 1), generator=g).float() * 2 - 1
        return ddpm_loss(net, schedule, mixture(512, g)[0] * c, c, generator=g)

    train(net, loss)
    for sign in (1.0, -1.0):
        x = ddpm_sample(net, schedule, (4000, 2), torch.full((1, 1), sign), generator=gen(2))
        check_mixture(x, sign * MODES, mean_tol=0.06, std_tol=0.6)


def test_ddpm_sampling_is_reproducible_and_batch_shape_agnostic():
    schedule, net = DDPMSchedule.vp(10), small_mlp(cond_dim=3)
    obs = torch.randn(4, 3)
    flat = ddpm_sample(net, schedule, (4 * 8, 2), obs.repeat_interleave(8, 0), generator=gen(0))
    again = ddpm_sample(net, schedule, (4 * 8, 2), obs.repeat_interleave(8, 0), generator=gen(0))
    other = ddpm_sample(net, schedule, (4 * 8, 2), obs.repeat_interleave(8, 0), generator=gen(1))
    nested = ddpm_sample(net, schedule, (4, 8, 2), obs[:, None], generator=gen(0))  # cond broadcast over candidates
    assert torch.equal(flat, again)
    assert (flat - other).abs().mean() > 0.1
    torch.testing.assert_close(nested.reshape(32, 2), flat)
    unclipped = ddpm_sample(net, schedule, (256, 2), obs[:1], generator=gen(0), clip=False)
    assert flat.abs().max() <= 1 and unclipped.abs().max() > 1  # an untrained net leaves [-1, 1] unless clipped


# ---------------------------------------------------------------- EDM

def test_edm_preconditioning_at_known_sigmas():
    sd = 0.5
    c_skip, c_out, c_in, c_noise = edm_preconditioning(torch.tensor([1e-8, sd, 3 * sd, 1e8], dtype=torch.float64), sd)
    torch.testing.assert_close(c_skip, torch.tensor([1.0, 0.5, 0.1, 0.0], dtype=torch.float64))
    torch.testing.assert_close(c_out, torch.tensor([0.0, sd / math.sqrt(2), 3 * sd / math.sqrt(10), sd],
                                                   dtype=torch.float64))
    torch.testing.assert_close(c_in[1:3], torch.tensor([1 / (sd * math.sqrt(2)), 1 / (sd * math.sqrt(10))],
                                                       dtype=torch.float64))
    torch.testing.assert_close(c_noise[1], torch.tensor(math.log(sd) / 4, dtype=torch.float64))


class Scale(nn.Module):
    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Tensor, noise_level: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.k * x


def test_edm_loss_of_the_bayes_denoiser_is_one():
    """For x0 ~ N(0, sd^2) the posterior mean is c_skip x (so F = 0 is optimal) and w(sigma) times the posterior
    variance is 1 at every sigma: the expected loss is 1. F(y) = k y adds k c_in c_out to the skip factor, which
    adds w k^2 c_in^2 c_out^2 (sigma^2 + sd^2) = k^2 at every sigma."""
    s, g = 0.5, gen(0)
    x0 = s * torch.randn(200_000, 2, generator=g)
    assert edm_loss(EDMPrecond(Scale(0.0), sigma_data=s), x0, generator=g).item() == pytest.approx(1.0, abs=0.015)
    assert edm_loss(EDMPrecond(Scale(0.3), sigma_data=s), x0, generator=g).item() == pytest.approx(1.09, abs=0.015)


def test_heun_sampler_with_the_exact_denoiser_returns_the_gaussian():
    mu, s = torch.tensor([1.0, -2.0, 0.0]), torch.tensor([0.5, 2.0, 1.0])
    x = HeunSampler(num_steps=64).sample(GaussianDenoiser(mu, s), (20_000, 3), generator=gen(0))
    assert ((x.mean(0) - mu).abs() < 0.05 * s).all(), x.mean(0)
    assert ((x.std(0) / s - 1).abs() < 0.04).all(), x.std(0)
    deterministic = HeunSampler(num_steps=64, s_churn=0.0).sample(GaussianDenoiser(mu, s), (20_000, 3),
                                                                  generator=gen(0))
    assert ((deterministic.std(0) / s - 1).abs() < 0.04).all()


def test_edm_trains_the_mlp_denoiser_on_the_mixture():
    """The action network plugs into EDM as well as DDPM."""
    torch.manual_seed(0)
    model, g = EDMPrecond(small_mlp(time_std=1.0), sigma_data=0.5), gen(1)
    train(model, lambda: edm_loss(model, mixture(512, g)[0], generator=g))
    check_mixture(HeunSampler(num_steps=24, s_churn=10.0).sample(model, (4000, 2), generator=gen(2)), MODES)


def test_guidance_moves_only_the_masked_channels_and_raises_the_target_likelihood():
    """Trajectories (B, L, 3) from N(0, I); guidance toward N(2, 0.5^2) on channel 2 only."""
    target_mean, target_std = 2.0, 0.5

    def log_prob(x: Tensor) -> Tensor:
        return (-0.5 * ((x[..., 2] - target_mean) / target_std) ** 2).sum(-1)

    denoiser = GaussianDenoiser(torch.zeros(3), torch.ones(3))
    sampler, mask = HeunSampler(num_steps=32), torch.tensor([0.0, 0.0, 1.0])
    scales = pgd_guidance_scales(32, coef=0.05)
    plain = sampler.sample(denoiser, (512, 16, 3), generator=gen(0))
    guided = sampler.sample(denoiser, (512, 16, 3), guidance=score_guidance(log_prob), guidance_scales=scales,
                            guidance_mask=mask, generator=gen(0))
    torch.testing.assert_close(guided[..., :2], plain[..., :2])  # same noise; the denoiser is per channel
    assert (guided[..., 2] - plain[..., 2]).abs().mean() > 0.3
    assert log_prob(guided).mean() > log_prob(plain).mean() + 0.5 * 16
    assert guided[..., 2].mean() > plain[..., 2].mean() + 0.5


def test_pgd_guidance_scales():
    expected = [1 + 0.3 * math.sin(math.pi / 4), 0.75 + 0.3, 0.5 + 0.3 * math.sin(3 * math.pi / 4), 0.0]
    assert pgd_guidance_scales(4, coef=2.0) == pytest.approx([2 * e for e in expected])


def test_edm_sampling_is_reproducible():
    sampler, denoiser = HeunSampler(num_steps=8), GaussianDenoiser(torch.zeros(2), torch.ones(2))
    a, b, c = (sampler.sample(denoiser, (64, 2), generator=gen(seed)) for seed in (0, 0, 1))
    assert torch.equal(a, b) and (a - c).abs().mean() > 0.1


# ---------------------------------------------------------------- U-Net

@pytest.mark.parametrize("horizon", [4, 32, 129])
def test_unet_keeps_the_trajectory_shape_and_trains_under_edm(horizon):
    torch.manual_seed(0)
    net = TemporalUNet(channels=5, features=16, num_levels=3, cond_dim=2)
    x, cond = torch.randn(3, horizon, 5), torch.randn(3, 2)
    assert net(x, torch.rand(3), cond).shape == x.shape
    assert net(x, torch.tensor(0.3), cond).shape == x.shape  # one noise level for the whole batch
    model = EDMPrecond(net)
    loss = edm_loss(model, x, cond)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in net.parameters())
    out = HeunSampler(num_steps=4).sample(model, (2, horizon, 5), cond[:2], generator=gen(0))
    assert out.shape == (2, horizon, 5) and torch.isfinite(out).all()
