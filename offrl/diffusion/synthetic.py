"""Synthetic transitions as a batch source (Policy-Guided Diffusion: docs/algorithms/pgd.md).

``SyntheticSource`` holds a table of transitions decoded from trajectories sampled by a trained
trajectory model (``offrl diffusion train``) and regenerates it every ``refresh_every`` agent updates,
guided by the current agent's ``log_prob`` (``guidance_coef`` > 0: PGD) or unguided (0: a SynthER-like
baseline). The first table is unguided (as PGD's). Composed with the real data by ``Mixture`` (PGD:
240 synthetic + 16 real rows per batch of 256), so any offline agent trains on it unchanged. Its
checkpoint state is the current table, the refresh counter and the sampling RNGs: a killed run
resumes with the same synthetic data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from offrl.core.config import MAX_BATCH, non_negative, positive, rate, validate
from offrl.core.errors import ConfigError
from offrl.core.progress import write
from offrl.data.store import Batch, ObsNormalizer, TransitionStore
from offrl.diffusion.trajectory import sample


@dataclass
class SyntheticConfig:
    model: str | None = None  # a model directory written by `offrl diffusion train`; None: no synthetic data
    enabled: bool = False  # set by synthetic=pgd | unguided: then a model is required
    share: float = rate(240 / 256)  # synthetic rows per batch (PGD: 240 of 256)
    refresh_every: int = positive(10_000)  # agent updates between regenerations (PGD's synth_dataset_lifetime)
    guidance_coef: float = non_negative(0.0)  # 0: unguided; > 0: guided by the agent (PGD's policy_guidance_coeff)
    # None: the model preset's synthetic_trajectories (8192 paper, 128 cpu)
    num_trajectories: int | None = positive(None, most=MAX_BATCH)  # trajectories per table
    horizon: int | None = positive(None, most=MAX_BATCH)  # sampled trajectory length (None: the model's sample_horizon)
    sampler_steps: int | None = positive(None, most=MAX_BATCH)  # Heun steps (None: the model's)
    chunk: int = positive(256, most=MAX_BATCH)  # trajectories sampled at once


class SyntheticSource:
    def __init__(self, cfg: SyntheticConfig, model, agent: nn.Module, normalizer: ObsNormalizer, seed: int) -> None:
        validate(cfg, "synthetic")
        if cfg.horizon is not None and cfg.horizon < model.cfg.min_horizon():
            raise ConfigError(f"synthetic.horizon={cfg.horizon}: expected at least {model.cfg.min_horizon()}, the "
                              f"shortest trajectory the model's {model.cfg.num_levels}-level U-Net samples")
        self.cfg, self.model, self.agent = cfg, model, agent
        self.num_trajectories = cfg.num_trajectories or model.cfg.synthetic_trajectories
        self.normalizer = normalizer.to(model.device)
        self.generator = torch.Generator(device=model.device)
        self.generator.manual_seed(seed + 7919)
        self.refreshes = 0  # tables generated so far
        self.table: TransitionStore | None = None
        self.seed = seed

    def __len__(self) -> int:
        return 0 if self.table is None else len(self.table)

    def refresh(self, agent_step: int) -> None:
        """Regenerate the table when ``agent_step`` reached the next refresh (the first one at step 0)."""
        if self.table is not None and agent_step < self.refreshes * self.cfg.refresh_every:
            return
        cfg = self.cfg
        coef = cfg.guidance_coef if self.refreshes > 0 else 0.0  # the first table is unguided (PGD)
        started = time.perf_counter()
        label = f"synthetic table {self.refreshes + 1} ({'guided' if coef else 'unguided'})"
        windows = sample(self.model, self.num_trajectories, guidance_coef=coef, agent=self.agent if coef else None,
                         generator=self.generator, horizon=cfg.horizon, obs_transform=self.normalizer,
                         num_steps=cfg.sampler_steps, batch_size=cfg.chunk, desc=label)
        batch = self.model.decode(windows.detach())
        seconds = time.perf_counter() - started
        write(f"offrl: {label} at update {agent_step}: {len(batch.rewards)} transitions from {self.num_trajectories} "
              f"trajectories in {seconds:.1f} s ({len(batch.rewards) / seconds:.0f} transitions/s)")
        table = TransitionStore(batch.obs.shape[1], batch.actions.shape[1], len(batch.rewards), self.model.device,
                                seed=self.seed + 31 * self.refreshes)
        table.add(self.normalizer(batch.obs), batch.actions, batch.rewards, self.normalizer(batch.next_obs),
                  batch.dones, torch.zeros_like(batch.dones))
        self.table = table
        self.refreshes += 1

    def sample(self, batch_size: int) -> Batch:
        return self.table.sample(batch_size)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.cfg.model, "refreshes": self.refreshes, "generator": self.generator.get_state(),
                "table": None if self.table is None else self.table.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.refreshes = state["refreshes"]
        self.generator.set_state(state["generator"])
        if state["table"] is not None:
            saved = state["table"]
            self.table = TransitionStore(saved["obs"].shape[1], saved["actions"].shape[1], saved["size"],
                                         self.model.device)
            self.table.load_state_dict(saved)
