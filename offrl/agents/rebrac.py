"""ReBRAC (Tarasov et al., NeurIPS 2023; docs/algorithms/rebrac.md): TD3+BC revisited. A behaviour-cloning penalty in
the critic's target as well as in the actor's loss, LayerNorm critics, three hidden layers, batches of 1024.

Per iteration, on a batch (s, a, r, s', a'_D, d) where a'_D is the dataset's action at s' (Batch.next_actions):
    a'  = clip(pi_target(s') + clip(eps, -c, c), -1, 1),   eps ~ N(0, sigma^2)
    y   = r + gamma (1 - d) [min_j Q_target_j(s', a') - beta_2 ||a' - a'_D||^2]
    L_Q = sum_j mean_B (Q_j(s, a) - y)^2
every ``policy_freq`` iterations:
    lambda  = alpha / sg(mean_B |min_j Q_j(s, pi(s))|)
    L_actor = mean_B [beta_1 ||pi(s) - a||^2 - lambda min_j Q_j(s, pi(s))]
    Polyak-update target actor and target critics with rate tau.
beta_1 is ``beta_actor``, beta_2 ``beta_critic``; squared norms are summed over the action dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from offrl.agents.td3bc import TD3BC, TD3BCConfig
from offrl.core.config import non_negative, positive, widths
from offrl.core.nets import polyak_update
from offrl.data.store import Batch


@dataclass
class ReBRACConfig(TD3BCConfig):
    name: str = "rebrac"
    hidden_dims: list[int] = widths([256, 256, 256])  # actor and critics: the paper's 3 hidden layers of 256
    normalize_states: bool = False  # the paper trains on raw states
    critic_layer_norm: bool = True  # on: the paper's LayerNorm critics
    actor_lr: float = positive(1e-3)  # the paper's 1e-3
    critic_lr: float = positive(1e-3)  # the paper's 1e-3
    alpha: float = non_negative(1.0)  # 1 in the paper, which sets the trade-off with beta_actor instead
    beta_actor: float = non_negative(0.001)  # beta_1: weight of ||pi(s) - a||^2 in the actor loss
    beta_critic: float = non_negative(0.01)  # beta_2: weight of ||a' - a'_D||^2 subtracted in the TD target


class ReBRAC(TD3BC):
    config_class = ReBRACConfig
    dataset_columns = ("next_actions",)  # a'_D of the critic's penalty

    @torch.no_grad()
    def td_target(self, batch: Batch, noise: Tensor) -> tuple[Tensor, Tensor]:
        """The smoothed target actions a' and the TD targets y, whose next-state value is penalised by the distance
        of a' to the dataset's next action."""
        cfg = self.cfg
        noise = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
        next_actions = (self.actor_target(batch.next_obs) + noise).clamp(-1.0, 1.0)
        penalty = (next_actions - batch.next_actions).pow(2).sum(dim=-1)
        next_q = self.critic_target(batch.next_obs, next_actions).min(dim=-2).values - cfg.beta_critic * penalty
        return next_actions, batch.rewards + cfg.discount * (1.0 - batch.dones) * next_q

    def actor_step(self, batch: Batch, bc_target: Tensor) -> dict[str, Tensor]:
        """L_actor on the smaller of the two critics, then the target updates."""
        pi = self.actor(batch.obs)
        q = self.critic(batch.obs, pi).min(dim=-2).values
        lmbda = self.cfg.alpha / q.abs().mean(dim=-1).detach()
        bc_loss = (pi - bc_target).pow(2).sum(dim=-1).mean(dim=-1)
        actor_loss = self.cfg.beta_actor * bc_loss - lmbda * q.mean(dim=-1)
        self.optimize("actor", actor_loss)  # gradients reach the actor only, not the critic's weights
        polyak_update(self.critic_target, self.critic, self.cfg.tau)
        polyak_update(self.actor_target, self.actor, self.cfg.tau)
        return {"actor_loss": actor_loss.detach(), "bc_loss": bc_loss.detach(), "lambda": lmbda,
                "q_policy": q.mean(dim=-1).detach()}
