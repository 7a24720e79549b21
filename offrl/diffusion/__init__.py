"""The diffusion block shared by EXPO (DDPM policy, docs/algorithms/expo.md) and Policy-Guided Diffusion (EDM trajectory
model, docs/algorithms/pgd.md): schedules, denoisers f(x, noise_level, cond), losses and samplers. Any denoiser plugs
into either machinery."""

from offrl.diffusion.ddpm import ddpm_loss, ddpm_sample
from offrl.diffusion.denoisers import FourierFeatures, MLPResNetDenoiser, ResidualBlock, SinusoidalEmbedding
from offrl.diffusion.edm import (
    EDMPrecond,
    Guidance,
    HeunSampler,
    edm_loss,
    edm_preconditioning,
    pgd_guidance_scales,
    score_guidance,
)
from offrl.diffusion.schedules import DDPMSchedule, cosine_betas, karras_sigmas, left_align, vp_betas
from offrl.diffusion.unet import TemporalUNet

__all__ = [
    "DDPMSchedule", "EDMPrecond", "FourierFeatures", "Guidance", "HeunSampler", "MLPResNetDenoiser", "ResidualBlock",
    "SinusoidalEmbedding", "TemporalUNet", "cosine_betas", "ddpm_loss", "ddpm_sample", "edm_loss",
    "edm_preconditioning", "karras_sigmas", "left_align", "pgd_guidance_scales", "score_guidance", "vp_betas",
]
