"""TD3+BC (Fujimoto & Gu, NeurIPS 2021; docs/algorithms/td3bc.md): TD3 with a behaviour-cloning term in the actor loss.

Per iteration (the TD3 backbone, docs/algorithms/td3bc.md#the-td3-backbone):
    a' = clip(pi_target(s') + clip(eps, -c, c), -1, 1),   eps ~ N(0, sigma^2)
    y  = r + gamma (1 - d) min_j Q_target_j(s', a')
    L_Q = sum_j MSE(Q_j(s, a), y)
every ``policy_freq`` iterations:
    lambda  = alpha / sg(mean |Q_1(s, pi(s))|)
    L_actor = -lambda mean Q_1(s, pi(s)) + MSE(pi(s), a)
    Polyak-update target actor and target critics with rate tau.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from offrl.agents.base import Agent, AgentConfig
from offrl.core.config import fraction, non_negative, positive, rate, widths
from offrl.core.nets import DeterministicActor, EnsembleCritic, frozen_copy, polyak_update
from offrl.core.optim import adam
from offrl.data.store import Batch


@dataclass
class TD3BCConfig(AgentConfig):
    name: str = "td3bc"
    critic_hidden_dims: list[int] | None = widths(None)  # the critics' hidden layers; None: hidden_dims
    critic_layer_norm: bool = False  # a LayerNorm after each hidden layer's activation in the critics (ReBRAC's)
    actor_lr: float = positive(3e-4)  # Adam learning rate of the actor
    critic_lr: float = positive(3e-4)  # Adam learning rate of the twin critics
    discount: float = fraction(0.99)  # gamma of the TD target
    tau: float = rate(0.005)  # Polyak rate of the target actor and critics (on actor steps only)
    policy_noise: float = non_negative(0.2)  # sigma of the target-policy smoothing noise
    noise_clip: float = non_negative(0.5)  # c: the smoothing noise is clipped to [-c, c]
    policy_freq: int = positive(2)  # the actor and the targets update every policy_freq-th iteration
    alpha: float = non_negative(2.5)  # lambda = alpha / mean |Q|: weight of the Q term against the BC term
    exploration_noise: float = non_negative(0.1)  # std of the Gaussian added by act(deterministic=False)


class TD3BC(Agent):
    config_class = TD3BCConfig
    seed_axis = True  # losses reduce over the batch dims (-1, -2) only; a leading seed axis stays per seed

    def __init__(self, cfg: TD3BCConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden_dims)
        self.critic_hidden_dims = cfg.hidden_dims if cfg.critic_hidden_dims is None else cfg.critic_hidden_dims
        self.critic = EnsembleCritic(obs_dim, act_dim, n=2, hidden=self.critic_hidden_dims,
                                     layer_norm=cfg.critic_layer_norm, norm_after_activation=True)
        self.actor_target = frozen_copy(self.actor)
        self.critic_target = frozen_copy(self.critic)
        self.optimizers = {"actor": adam(self.actor, cfg.actor_lr), "critic": adam(self.critic, cfg.critic_lr)}

    def prepare(self, batch: Batch) -> dict[str, Tensor]:
        """The standard normal draws of the target-policy smoothing, from the agent's own stream(s), and every
        policy_freq-th update the BC target (its presence runs the actor step)."""
        inputs = {"smoothing": self.noise_like(batch.actions)}
        if (self.num_updates + 1) % self.cfg.policy_freq == 0:
            inputs["bc_target"] = self.bc_target(batch)
        return inputs

    def iteration(self, batch: Batch, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The captured update: the critic step and, given the BC target, the actor step and the target updates."""
        _, y = self.td_target(batch, inputs["smoothing"])
        metrics = self.q_step(batch, y)
        if "bc_target" in inputs:
            metrics.update(self.actor_step(batch, inputs["bc_target"]))
        return metrics

    @torch.no_grad()
    def td_target(self, batch: Batch, noise: Tensor) -> tuple[Tensor, Tensor]:
        """The smoothed target actions a' and the TD targets y."""
        cfg = self.cfg
        noise = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
        next_actions = (self.actor_target(batch.next_obs) + noise).clamp(-1.0, 1.0)
        target_q = self.critic_target(batch.next_obs, next_actions).min(dim=-2).values
        return next_actions, batch.rewards + cfg.discount * (1.0 - batch.dones) * target_q

    def q_step(self, batch: Batch, y: Tensor) -> dict[str, Tensor]:
        """L_Q on the TD targets y. (The UTD schedule's critic_step takes no inputs, nor can the actor step wait
        for policy_freq there: the TD3 family does not run that schedule.)"""
        q = self.critic(batch.obs, batch.actions)  # (2, B)
        critic_loss = (q - y.unsqueeze(-2)).pow(2).mean(dim=-1).sum(dim=-1)
        self.optimize("critic", critic_loss)
        return {"critic_loss": critic_loss.detach(), "q_data": q.mean(dim=(-2, -1)).detach(), "target_q": y.mean(-1)}

    def actor_step(self, batch: Batch, bc_target: Tensor) -> dict[str, Tensor]:
        pi = self.actor(batch.obs)
        q1 = self.critic(batch.obs, pi, members=slice(0, 1))[..., 0, :]
        lmbda = self.cfg.alpha / q1.abs().mean(dim=-1).detach()
        bc_loss = (pi - bc_target).pow(2).mean(dim=(-2, -1))
        actor_loss = -lmbda * q1.mean(dim=-1) + bc_loss
        self.optimize("actor", actor_loss)  # gradients reach the actor only, not the critic's weights
        polyak_update(self.critic_target, self.critic, self.cfg.tau)
        polyak_update(self.actor_target, self.actor, self.cfg.tau)
        return {"actor_loss": actor_loss.detach(), "bc_loss": bc_loss.detach(), "lambda": lmbda,
                "q_policy": q1.mean(dim=-1).detach()}

    def bc_target(self, batch: Batch) -> Tensor:
        """The actions the BC term pulls pi(s) toward, computed outside the captured region (PRDC searches
        on the host): TD3+BC uses the dataset actions."""
        return batch.actions

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        action = self.actor(obs)
        if not deterministic:
            action = (action + self.cfg.exploration_noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return action
