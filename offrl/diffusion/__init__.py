"""The generative block, one family of schedules, denoisers f(x, noise_level, cond), losses and samplers, shared by
EXPO (DDPM policy, docs/algorithms/expo.md), Policy-Guided Diffusion (EDM trajectory model, docs/algorithms/pgd.md)
and FQL (flow matching: a velocity field and its Euler sampler, docs/algorithms/fql.md). Any denoiser plugs into any
of the machineries: the noise level is DDPM's step index, EDM's c_noise(sigma) or the flow's time t."""

from offrl.diffusion.ddpm import ddpm_loss, ddpm_sample
from offrl.diffusion.denoisers import (
    FourierFeatures,
    MLPResNetDenoiser,
    MLPVelocity,
    ResidualBlock,
    SinusoidalEmbedding,
)
from offrl.diffusion.edm import (
    EDMPrecond,
    Guidance,
    HeunSampler,
    edm_loss,
    edm_preconditioning,
    pgd_guidance_scales,
    score_guidance,
)
from offrl.diffusion.flow import euler_sample, flow_matching_loss
from offrl.diffusion.schedules import DDPMSchedule, cosine_betas, karras_sigmas, left_align, vp_betas
from offrl.diffusion.unet import TemporalUNet

__all__ = [
    "DDPMSchedule", "EDMPrecond", "FourierFeatures", "Guidance", "HeunSampler", "MLPResNetDenoiser", "MLPVelocity",
    "ResidualBlock", "SinusoidalEmbedding", "TemporalUNet", "cosine_betas", "ddpm_loss", "ddpm_sample", "edm_loss",
    "edm_preconditioning", "euler_sample", "flow_matching_loss", "karras_sigmas", "left_align", "pgd_guidance_scales",
    "score_guidance", "vp_betas",
]
