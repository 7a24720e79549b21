"""PGD's trajectory model (docs/algorithms/pgd.md): an EDM-preconditioned ``TemporalUNet`` over normalised
windows [obs | pre-tanh action | reward | done] (``offrl.data.windows``), its EMA copy, optimiser and
schedule, one-file save/load with the normalisation statistics, and (guided) sampling through ``HeunSampler``.

Guidance (docs/algorithms/pgd.md#guided-sampling): before sampler step i the action channels move by
lambda_i * grad_{x_act} sum_t log pi(tanh(unnormalise(x_act_t)) | s_t), with lambda_i from
``pgd_guidance_scales`` and s_t the unnormalised observations of the noisy sample, passed through
``obs_transform`` (the trainer's observation normaliser) before the agent sees them. The gradient is with
respect to the normalised pre-tanh action channels; observations, rewards and done flags are shaped only
by the diffusion model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from offrl.core import checkpoint
from offrl.core.config import (
    MAX_BATCH,
    between,
    copies,
    fraction,
    non_negative,
    positive,
    seed_value,
    validate,
    width,
)
from offrl.core.errors import ConfigError, OffrlError
from offrl.core.progress import progress
from offrl.data.store import Batch
from offrl.data.windows import ACTION_EPS, TrajectoryNormalizer, TrajectoryWindows
from offrl.diffusion.edm import EDMPrecond, Guidance, HeunSampler, edm_loss, pgd_guidance_scales, score_guidance
from offrl.diffusion.unet import TemporalUNet

MODEL_KIND = "pgd-trajectory-model"
MODEL_FORMAT = 1  # bumped when the model file's layout changes
MODEL_FILE = "model.pt"


@dataclass
class TrajectoryModelConfig:
    """Trajectory diffusion model and its training. Defaults are the paper's (docs/algorithms/pgd.md, PGD's
    ``util/args.py``; a GPU configuration: a 1024/2048/4096-channel U-Net and 10,000 epochs).

    ``TrajectoryModelConfig.cpu()`` (``preset=cpu``) trains on two CPU cores in well under an hour; it reduces
    only: ``features`` 1024 -> 64 (U-Net widths 64/128/256), ``epochs`` 10,000 -> ``steps`` 20,000 optimiser
    steps (about 15 minutes on one core of this machine for idp-mixed; the paper runs tens of millions),
    ``sampler_steps`` 256 -> 64, ``sample_horizon`` 129 -> 65, and the synthetic table of ``offrl train
    synthetic=...`` 8,192 -> 128 trajectories (8,192 transitions), so that a refresh costs at most about a fifth of
    the 10,000 agent updates between refreshes on one CPU core (benchmarks/results/synthetic_refresh.md).
    Everything else (horizon 32, stride 8,
    batch 32, lr 2e-3 with 10 % warm-up from 0.1 lr and cosine decay to 0, EMA 0.995 every 10 steps, EDM
    constants, churn, guidance schedule) is the paper's.
    """

    # windows (docs/algorithms/pgd.md#trajectory-windows)
    horizon: int = positive(32, most=MAX_BATCH)  # steps per training window
    stride: int = positive(8, most=MAX_BATCH)  # steps between window starts within an episode
    val_fraction: float = between(0.05, 0, 1, open_high=True)  # share of the episodes held out for the validation loss
    action_eps: float = between(ACTION_EPS, 0, 1, open_low=True, open_high=True)  # atanh(clip(a, +-(1 - eps)))
    # U-Net (docs/algorithms/pgd.md#the-trajectory-model)
    features: int = width(1024)  # U-Net width of the first level (level i: features * 2^i)
    num_levels: int = copies(3)  # U-Net levels, max-pooled by 2 between levels
    groups: int = width(8)  # GroupNorm groups
    # optimisation (docs/algorithms/pgd.md#training; PGD: optax warmup_cosine_decay_schedule + plain Adam)
    batch_size: int = positive(32, most=MAX_BATCH)  # windows per optimiser step
    lr: float = positive(2e-3)  # peak Adam learning rate
    warmup_fraction: float = fraction(0.1)  # peak lr at this fraction of the total steps
    warmup_init: float = fraction(0.1)  # the schedule starts at warmup_init * lr
    epochs: float = positive(10_000.0, most=1e6)  # full passes over the training windows (used when steps is None)
    steps: int | None = positive(None)  # total optimiser steps; None: epochs * (windows // batch_size)
    ema_decay: float = fraction(0.995)  # decay of the EMA copy that is saved and sampled
    ema_every: int = positive(10)  # optimiser steps between EMA updates
    # EDM (docs/algorithms/pgd.md#training)
    p_mean: float = -1.2  # mean of ln sigma when training
    p_std: float = positive(1.2)  # std of ln sigma when training
    sigma_data: float = positive(1.0)  # std of the (standardised) data in the preconditioning
    # sampler (docs/algorithms/pgd.md#guided-sampling)
    sampler_steps: int = positive(256, most=MAX_BATCH)  # Heun sampler steps
    sigma_min: float = positive(0.002)  # smallest noise level of the sampler
    sigma_max: float = positive(80.0)  # largest noise level of the sampler
    rho: float = positive(7.0)  # exponent spacing the sampler's noise levels
    s_churn: float = non_negative(80.0)  # stochasticity of the sampler (added noise per step)
    s_tmin: float = non_negative(0.05)  # noise is added only at levels >= s_tmin
    s_tmax: float = non_negative(50.0)  # ... and <= s_tmax
    s_noise: float = non_negative(1.003)  # scale of the added noise
    heun: bool = True  # second-order (Heun) correction; false: Euler steps
    sample_horizon: int = positive(129, most=MAX_BATCH)  # synthetic trajectories of 128 transitions
    # PGD: 32 x 256 trajectories, ~1M transitions at 129 steps
    synthetic_trajectories: int = positive(8192, most=MAX_BATCH)  # per synthetic table of offrl train synthetic=...
    guidance_cos_coef: float = non_negative(0.3)  # weight of the sine bump in the guidance schedule
    # run
    seed: int = seed_value(0)  # seeds the validation split, the initialisation and the EDM noise
    device: str = "auto"  # auto: cuda when available
    log_every: int = positive(100)  # steps between logged training losses
    val_every: int = positive(1000)  # steps between validation losses
    val_batches: int = positive(16, most=MAX_BATCH)  # validation windows per evaluation: this * batch_size, at most all
    checkpoint_every: int = positive(2000)  # steps between checkpoints (and model.pt)

    @classmethod
    def cpu(cls, **overrides: Any) -> TrajectoryModelConfig:
        """The CPU preset (see the class docstring for what it reduces)."""
        values = dict(features=64, steps=20_000, sampler_steps=64, sample_horizon=65, synthetic_trajectories=128)
        values.update(overrides)
        return cls(**values)

    def min_horizon(self) -> int:
        """The shortest window the U-Net takes: it halves the length between its levels."""
        return 2 ** (self.num_levels - 1)

    def total_steps(self, num_windows: int) -> int:
        if self.steps is not None:
            return int(self.steps)
        return max(1, int(self.epochs * max(num_windows // self.batch_size, 1)))

    def check(self, where: str) -> None:
        """The rules that tie fields together (each field's own range is declared with it)."""
        key = f"{where}." if where else ""
        if self.horizon < self.min_horizon() or self.sample_horizon < self.min_horizon():
            raise ConfigError(f"{key}horizon {self.horizon} / {key}sample_horizon {self.sample_horizon}: the U-Net's "
                              f"{self.num_levels} levels need at least {self.min_horizon()} steps")
        if self.features % self.groups or self.features % 4:
            raise ConfigError(f"{key}features={self.features} must be a multiple of {key}groups={self.groups} and "
                              "of 4")


class TrajectoryModel(nn.Module):
    """D(x; sigma) = EDMPrecond(TemporalUNet) over windows (B, L, obs_dim + act_dim + 2), with an EMA copy
    (``ema``) that is what gets sampled from (docs/algorithms/pgd.md). ``dataset`` names the data it models;
    ``info`` keeps the dataset's env id and reference returns for the synthetic files."""

    def __init__(self, cfg: TrajectoryModelConfig, normalizer: TrajectoryNormalizer, dataset: str,
                 info: dict[str, Any] | None = None) -> None:
        super().__init__()
        validate(cfg, "")
        self.cfg, self.dataset, self.info = cfg, dataset, dict(info or {})
        self.obs_dim, self.act_dim = normalizer.obs_dim, normalizer.act_dim
        self.normalizer = normalizer
        unet = TemporalUNet(normalizer.channels, cfg.features, cfg.num_levels, cfg.groups)
        self.net = EDMPrecond(unet, cfg.sigma_data)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)

    @property
    def channels(self) -> int:
        return self.normalizer.channels

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, *args: Any, **kwargs: Any) -> TrajectoryModel:
        super().to(*args, **kwargs)
        self.normalizer = self.normalizer.to(self.device)
        return self

    def loss(self, windows: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """EDM loss of the online network on normalised windows (B, L, C)."""
        return edm_loss(self.net, windows, p_mean=self.cfg.p_mean, p_std=self.cfg.p_std, generator=generator)

    @torch.no_grad()
    def ema_loss(self, windows: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return edm_loss(self.ema, windows, p_mean=self.cfg.p_mean, p_std=self.cfg.p_std, generator=generator)

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- decay ema + (1 - decay) online (applied every ``ema_every`` steps by ``train_step``)."""
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.net.parameters()), 1.0 - self.cfg.ema_decay)

    def sampler(self, num_steps: int | None = None) -> HeunSampler:
        c = self.cfg
        return HeunSampler(num_steps=num_steps or c.sampler_steps, sigma_min=c.sigma_min, sigma_max=c.sigma_max,
                           rho=c.rho, s_churn=c.s_churn, s_tmin=c.s_tmin, s_tmax=c.s_tmax, s_noise=c.s_noise,
                           heun=c.heun)

    def decode(self, windows: Tensor) -> Batch:
        return self.normalizer.decode(windows)


# ---------------------------------------------------------------------- optimisation
def warmup_cosine(step: int, total: int, warmup_fraction: float = 0.1, init: float = 0.1) -> float:
    """lr factor: linear from ``init`` to 1 over the first ``warmup_fraction`` of ``total`` steps, then cosine
    to 0 at ``total`` (optax.warmup_cosine_decay_schedule with decay_steps = total, as PGD uses it)."""
    warmup = int(total * warmup_fraction)
    if step < warmup:
        return init + (1.0 - init) * step / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: TrajectoryModel, total_steps: int) -> tuple[torch.optim.Adam, Any]:
    """Adam (PGD: optax.adam defaults, no gradient clipping) on the online network with ``warmup_cosine``."""
    c = model.cfg
    opt = torch.optim.Adam(model.net.parameters(), lr=c.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: warmup_cosine(step, total_steps, c.warmup_fraction, c.warmup_init))
    return opt, schedule


def train_step(model: TrajectoryModel, opt: torch.optim.Optimizer, schedule: Any, windows: Tensor, step: int,
               generator: torch.Generator | None = None) -> Tensor:
    """One optimiser step on a batch of windows; ``step`` counts completed steps before this one. Returns the
    loss as a (detached) device tensor; the EMA is updated after every ``ema_every``-th step."""
    loss = model.loss(windows, generator)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    schedule.step()
    if (step + 1) % model.cfg.ema_every == 0:
        model.update_ema()
    return loss.detach()


# ---------------------------------------------------------------------- training through offrl's trainer
class TrajectoryLearner(nn.Module):
    """The trajectory model as ``offrl.training.Trainer`` trains it, like an agent: ``update(windows)`` is one
    ``train_step`` (Adam on the EDM loss, the warm-up-cosine lr schedule, the EMA), with the EDM noise drawn
    from a generator of its own; its state, optimiser state and ``artifacts`` (``model.pt``, what ``sample`` and
    ``synthetic.model`` read) go into the trainer's checkpoints."""

    name = "trajectory-model"

    def __init__(self, model: TrajectoryModel, total_steps: int, seed: int) -> None:
        super().__init__()
        self.model = model
        self.obs_dim, self.act_dim = model.obs_dim, model.act_dim
        self.opt, self.schedule = make_optimizer(model, total_steps)
        self.generator = torch.Generator(device=model.device).manual_seed(seed)
        self.num_updates = 0
        self.lr = torch.zeros(())  # the schedule's current lr, filled in place (no tensor made per step)

    def update(self, windows: Tensor) -> dict[str, Tensor]:
        loss = train_step(self.model, self.opt, self.schedule, windows, self.num_updates, self.generator)
        self.num_updates += 1
        self.lr.fill_(self.schedule.get_last_lr()[0])
        return {"loss": loss, "lr": self.lr}

    def get_extra_state(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "generator": self.generator.get_state(),
                "normalizer": self.model.normalizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.num_updates = state["num_updates"]
        self.generator.set_state(state["generator"])

    def optimizer_state(self) -> dict[str, Any]:
        return {"adam": self.opt.state_dict(), "schedule": self.schedule.state_dict()}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["adam"])
        self.schedule.load_state_dict(state["schedule"])

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {MODEL_FILE: model_state(self.model)}


VALIDATION_SEED = 12345  # the validation loss uses fixed noise, so its values are comparable across steps


class ValidationLoss:
    """The trainer's evaluation of a trajectory model: the EMA network's EDM loss on (up to ``val_batches``
    batches of) the held-out windows, with fixed noise. Lower is better."""

    def __init__(self, windows: TrajectoryWindows, batch_size: int, val_batches: int) -> None:
        self.windows, self.batch_size, self.val_batches = windows, batch_size, val_batches

    def measure(self, learner: TrajectoryLearner, seed: int) -> dict[str, float]:
        if len(self.windows.val_starts) == 0:
            return {}
        gen = torch.Generator(device=self.windows.device).manual_seed(VALIDATION_SEED)
        losses = [learner.model.ema_loss(batch, gen) * len(batch)
                  for batch in self.windows.validation_batches(self.batch_size, self.val_batches)]
        count = min(len(self.windows.val_starts), self.batch_size * self.val_batches)
        return {"val_loss": float(torch.stack(losses).sum()) / count}

    def score(self, entry: dict[str, Any]) -> float:
        return -entry.get("val_loss", math.inf)

    def describe(self, entry: dict[str, Any]) -> str:
        return f"validation loss {entry['val_loss']:.4f}" if "val_loss" in entry else "no validation windows"

    def summary(self, last: dict[str, Any]) -> dict[str, Any]:
        return {"val_loss": last.get("val_loss")}

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------- sampling
def agent_guidance(model: TrajectoryModel, agent: nn.Module,
                   obs_transform: Callable[[Tensor], Tensor] | None = None) -> Guidance:
    """grad of sum_t agent.log_prob(obs_transform(s_t), tanh(unnormalise(x_act_t))) in the noisy sample x
    (only the action channels get a gradient; the observations are detached)."""
    norm = model.normalizer

    def log_prob(x: Tensor) -> Tensor:
        obs = norm.observations(x.detach())
        if obs_transform is not None:
            obs = obs_transform(obs)
        actions = norm.actions(x)
        return agent.log_prob(obs.reshape(-1, norm.obs_dim), actions.reshape(-1, norm.act_dim))

    return score_guidance(log_prob)


def sample(model: TrajectoryModel, num_windows: int, guidance: Guidance | None = None, guidance_coef: float = 0.0,
           agent: nn.Module | None = None, generator: torch.Generator | None = None, *, horizon: int | None = None,
           obs_transform: Callable[[Tensor], Tensor] | None = None, num_steps: int | None = None,
           batch_size: int | None = None, desc: str | None = None) -> Tensor:
    """``num_windows`` normalised trajectories (num_windows, horizon, C) from the EMA network (horizon: the
    config's ``sample_horizon``), on the model's device (``generator`` must live there).

    Guided when ``guidance_coef`` > 0 and ``agent`` (or an explicit ``guidance`` callable) is given: the action
    channels only, scaled by ``pgd_guidance_scales(steps, guidance_coef, cfg.guidance_cos_coef)``; unguided
    otherwise. ``batch_size`` splits the work into chunks (default: all at once). With ``desc``, a progress bar
    (``offrl.core.progress``) counts the transitions sampled, sampler step by sampler step. Decode with
    ``model.decode``.
    """
    horizon = horizon or model.cfg.sample_horizon
    sampler = model.sampler(num_steps)
    if guidance is None and agent is not None:
        guidance = agent_guidance(model, agent, obs_transform)
    guided = guidance is not None and guidance_coef > 0
    scales = pgd_guidance_scales(sampler.num_steps, guidance_coef, model.cfg.guidance_cos_coef) if guided else None
    mask = model.normalizer.action_mask() if guided else None
    chunk = batch_size or num_windows
    was_training = model.training
    model.eval()
    starts = range(0, num_windows, chunk)
    total, calls, steps_done = num_windows * (horizon - 1), len(starts) * sampler.num_steps, 0
    bar = progress(total, desc, "transition") if desc else None

    def step() -> None:  # the transitions, spread evenly over every sampler step of every chunk
        nonlocal steps_done
        steps_done += 1
        bar.update(total * steps_done // calls - total * (steps_done - 1) // calls)

    try:
        parts = [sampler.sample(model.ema, (min(chunk, num_windows - start), horizon, model.channels),
                                guidance=guidance if guided else None, guidance_scales=scales, guidance_mask=mask,
                                generator=generator, on_step=step if bar else None)
                 for start in starts]
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return torch.cat(parts) if len(parts) > 1 else parts[0]


# ---------------------------------------------------------------------- files
def model_state(model: TrajectoryModel) -> dict[str, Any]:
    return {
        "kind": MODEL_KIND, "model_format": MODEL_FORMAT, "config": asdict(model.cfg), "dataset": model.dataset,
        "info": model.info, "obs_dim": model.obs_dim, "act_dim": model.act_dim,
        "normalizer": model.normalizer.state_dict(),
        "net": {k: v.cpu() for k, v in model.net.state_dict().items()},
        "ema": {k: v.cpu() for k, v in model.ema.state_dict().items()},
    }


def save_model(model: TrajectoryModel, path: str | Path) -> Path:
    """The model (online and EMA weights, normalisation statistics, dataset name, dims, config) as one file;
    a directory gets ``model.pt`` inside it. Atomic (``offrl.core.checkpoint.save_atomic``)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / MODEL_FILE
    checkpoint.save_atomic(model_state(model), path)
    return path


def config_from_dict(values: dict[str, Any]) -> TrajectoryModelConfig:
    known = {f.name for f in fields(TrajectoryModelConfig)}
    return TrajectoryModelConfig(**{k: v for k, v in values.items() if k in known})


def load_model(path: str | Path, dataset: str | None = None, obs_dim: int | None = None, act_dim: int | None = None,
               device: str | torch.device = "cpu") -> TrajectoryModel:
    """A model written by ``save_model`` (a model directory or the file). With ``dataset``/``obs_dim``/``act_dim``
    given, a model of another dataset or size is refused. Every failure is a one-line OffrlError."""
    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() or not path.suffix else path
    if not file.parent.is_dir():
        raise OffrlError(f"{file.parent}: no such model directory")
    if not file.is_file():
        raise OffrlError(f"{file}: no trajectory model here (train one with: offrl diffusion train dataset=<name>)")
    state = checkpoint.load(file)  # truncated / unreadable / foreign checkpoint format -> OffrlError
    if state.get("kind") != MODEL_KIND:
        raise OffrlError(f"{file}: not a trajectory model file (it is a {state.get('kind') or 'training'} checkpoint)")
    if state.get("model_format") != MODEL_FORMAT:
        raise OffrlError(f"{file}: trajectory model format {state.get('model_format')} is not the format "
                         f"{MODEL_FORMAT} this offrl reads")
    wanted = {"dataset": dataset, "obs_dim": obs_dim, "act_dim": act_dim}
    wrong = [f"{k} {state[k]!r} (expected {v!r})" for k, v in wanted.items() if v is not None and state[k] != v]
    if wrong:
        raise OffrlError(f"{file}: the model was trained for another dataset: {', '.join(wrong)}")
    normalizer = TrajectoryNormalizer.from_state_dict(state["normalizer"])
    model = TrajectoryModel(config_from_dict(state["config"]), normalizer, state["dataset"], state.get("info"))
    model.net.load_state_dict(state["net"])
    model.ema.load_state_dict(state["ema"])
    return model.to(device)
