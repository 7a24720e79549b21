"""SAC with automatic temperature (Haarnoja et al. 2018, "SAC Algorithms and Applications"; docs/algorithms/sac.md).

Per gradient step on a replay batch:
    a' ~ pi(.|s'),   y = r + gamma (1 - d) [min_j Q_target_j(s', a') - alpha log pi(a'|s')]
    L_Q     = sum_j 1/2 E (Q_j(s, a) - y)^2
    L_pi    = E [alpha log pi(a~|s) - min_j Q_j(s, a~)],   a~ = tanh(mu + sigma * xi)
    L_alpha = -E [log_alpha * sg(log pi(a~|s) + H_target)],   H_target = -|A|
    Polyak:   Q_target <- tau Q + (1 - tau) Q_target
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from offrl.agents.base import Agent, AgentConfig
from offrl.core.config import copies, fraction, positive, rate
from offrl.core.nets import EnsembleCritic, TanhGaussianActor, frozen_copy, polyak_update
from offrl.core.optim import adam
from offrl.data.store import Batch


@dataclass
class SACConfig(AgentConfig):
    name: str = "sac"
    normalize_states: bool = False
    actor_lr: float = positive(3e-4)  # Adam learning rate of the policy
    critic_lr: float = positive(3e-4)  # Adam learning rate of the critics
    alpha_lr: float = positive(3e-4)  # Adam learning rate of log alpha (the temperature)
    discount: float = fraction(0.99)  # gamma
    tau: float = rate(0.005)  # Polyak rate of the target critics, every update
    init_temperature: float = positive(1.0)  # alpha at the start (softlearning: log_alpha = 0)
    target_entropy: float | None = None  # the entropy the temperature steers towards; None: -|A|
    num_critics: int = copies(2)  # critics; the TD target and the policy take the min over all


class SAC(Agent):
    config_class = SACConfig
    needs_actions_in_bounds = True  # log pi(a) of replayed and offline actions through atanh
    compiled_methods = ("iteration", "critic_step", "policy_step")

    def __init__(self, cfg: SACConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.actor = self.make_actor(obs_dim, act_dim)
        self.critic = EnsembleCritic(obs_dim, act_dim, n=cfg.num_critics, hidden=cfg.hidden_dims)
        self.critic_target = frozen_copy(self.critic)
        self.log_alpha = nn.Parameter(torch.tensor(float(cfg.init_temperature)).log())
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.optimizers = {
            "actor": adam(self.actor, cfg.actor_lr),
            "critic": adam(self.critic, cfg.critic_lr),
            "alpha": adam([self.log_alpha], cfg.alpha_lr),
        }

    def make_actor(self, obs_dim: int, act_dim: int) -> nn.Module:
        """The policy: forward(obs) -> (reparameterised action, log-density), mode(obs) -> action."""
        return TanhGaussianActor(obs_dim, act_dim, self.cfg.hidden_dims)

    def critic_step(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            alpha = self.log_alpha.exp()
            next_actions, next_log_prob = self.actor(batch.next_obs)
            next_q = self.critic_target(batch.next_obs, next_actions).min(dim=0).values
            y = batch.rewards + cfg.discount * (1.0 - batch.dones) * (next_q - alpha * next_log_prob)
        q = self.critic(batch.obs, batch.actions)  # (n, B)
        critic_loss = 0.5 * ((q - y) ** 2).mean(dim=1).sum()
        self.optimize("critic", critic_loss)
        polyak_update(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": critic_loss.detach(), "q_data": q.mean().detach(), "target_q": y.mean()}

    def policy_step(self, batch: Batch) -> dict[str, Tensor]:
        alpha = self.log_alpha.exp().detach()
        actions, log_prob = self.actor(batch.obs)
        q = self.critic(batch.obs, actions).min(dim=0).values
        actor_loss = (alpha * log_prob - q).mean()
        self.optimize("actor", actor_loss)
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.optimize("alpha", alpha_loss)
        return {"actor_loss": actor_loss.detach(), "alpha": alpha, "alpha_loss": alpha_loss.detach(),
                "entropy": -log_prob.mean().detach()}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor.mode(obs) if deterministic else self.actor(obs)[0]

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The tanh-Gaussian density of actions in (-1, 1), change of variables included; actions are
        clamped to 1e-6 inside the bounds before atanh."""
        return self.actor.log_prob(obs, actions)
