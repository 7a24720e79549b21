"""Behaviour cloning (docs/algorithms/bc.md): a deterministic policy regressed onto dataset actions.

    L_BC = E_B || pi_theta(s) - a ||^2      (mean over batch and action dims)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from offrl.agents.base import Agent, AgentConfig
from offrl.core.config import positive
from offrl.core.nets import DeterministicActor
from offrl.core.optim import adam
from offrl.data.store import Batch


@dataclass
class BCConfig(AgentConfig):
    name: str = "bc"
    lr: float = positive(3e-4)  # Adam learning rate of the policy


class BC(Agent):
    config_class = BCConfig
    seed_axis = True
    policy_goals = True
    def __init__(self, cfg: BCConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden_dims)
        self.optimizers = {"actor": adam(self.actor, cfg.lr)}

    def iteration(self, batch: Batch, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        loss = (self.actor(batch.actor_obs) - batch.actions).pow(2).mean(dim=(-2, -1))  # per seed with a seed axis
        self.optimize("actor", loss)
        return {"bc_loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor(obs)
