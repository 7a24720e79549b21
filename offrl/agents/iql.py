"""IQL, Implicit Q-Learning (Kostrikov, Nair & Levine, ICLR 2022): in-sample value learning by expectile
regression, then policy extraction by advantage-weighted regression. No action outside the dataset is
ever evaluated by Q.

Per iteration, in the order of the official code (V, then the policy with the new V, then Q):
    value:   u = min_j Q_target_j(s, a) - V(s),   L_V = E |expectile - 1(u < 0)| u^2
    policy:  w = min(exp(beta sg(min_j Q_target_j(s, a) - V(s))), exp_adv_max),   L_pi = -E w log pi(a|s)
             (deterministic option: L_pi = E w ||pi(s) - a||^2)
             or, ``extraction=ddpgbc`` (OGBench's GCIQL): q = min_j Q_j(s, clip(mode pi(s))),
             L_pi = -E q / sg(E |q|) - alpha E log pi(a|s)
    critic:  y = r + gamma (1 - d) sg(V(s')),   L_Q = sum_j E (Q_j(s, a) - y)^2
    Polyak:  Q_target <- tau Q + (1 - tau) Q_target
Policy: pi(a|s) = N(tanh(mu(s)), diag sigma^2), log sigma a state-independent parameter clipped to
[log_std_min, log_std_max]; the density is the Gaussian's on the action itself (no tanh Jacobian).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from offrl.agents.base import Agent, AgentConfig
from offrl.core.config import dropout, fraction, non_negative, one_of, positive, rate
from offrl.core.nets import (
    DeterministicActor,
    EnsembleCritic,
    GaussianActor,
    NormedMLP,
    frozen_copy,
    mlp,
    polyak_update,
)
from offrl.core.optim import adam
from offrl.data.store import Batch


@dataclass
class IQLConfig(AgentConfig):
    name: str = "iql"
    normalize_states: bool = False  # the official code feeds raw observations
    value_lr: float = positive(3e-4)  # Adam learning rate of V
    critic_lr: float = positive(3e-4)  # Adam learning rate of the twin Q
    actor_lr: float = positive(3e-4)  # Adam learning rate of the policy
    # The official code decays the actor's lr to 0 by a cosine over the run (1M steps); the agent does
    # not know the run length, so None keeps it constant (as PGD's IQL) and N decays over N updates.
    actor_lr_schedule_steps: int | None = positive(None)  # actor lr decays to 0 (cosine) over N updates; None: constant
    discount: float = fraction(0.99)  # gamma
    tau: float = rate(0.005)  # Polyak rate of the target Q
    expectile: float = fraction(0.7)  # the expectile V regresses onto (MuJoCo; AntMaze: 0.9)
    beta: float = non_negative(3.0)  # inverse temperature (MuJoCo; AntMaze: 10)
    exp_adv_max: float = positive(100.0)  # clip of exp(beta * advantage)
    policy: str = one_of("gaussian", "deterministic")  # gaussian (the paper) | deterministic (weighted MSE)
    log_std_min: float = -5.0  # lower clip of the policy's log std (PGD's JAX port: -20)
    log_std_max: float = 2.0  # upper clip of the policy's log std
    actor_dropout: float = dropout(0.0)  # on the policy's hidden layers; the official code: 0.1 on Kitchen/Adroit only
    # policy extraction: awr (the paper) | ddpgbc (OGBench's GCIQL: maximise the normalised Q of the policy's
    # mode with a BC term of weight alpha; OGBench's pointmaze setting alpha = 0.003, expectile 0.9)
    extraction: str = one_of("awr", "ddpgbc")  # awr (the paper) | ddpgbc (OGBench's GCIQL)
    alpha: float = non_negative(0.3)  # weight of the BC term of extraction=ddpgbc
    layer_norm: bool = False  # LayerNorm after the hidden layers of V and Q (OGBench's GCIQL: True)


def expectile_loss(diff: Tensor, expectile: float) -> Tensor:
    """E |expectile - 1(diff < 0)| diff^2: positive residuals weigh ``expectile``, negative ones 1 - expectile."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean(dim=-1)  # per seed with a seed axis


def cosine_lr(base_lr: float, step: int, total: int) -> float:
    """base_lr (1 + cos(pi min(step, total) / total)) / 2: base_lr at step 0, 0 from step ``total`` on."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total) / total))


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[None]:
    """Dropout off while acting or scoring actions; the training mode is restored afterwards."""
    was_training = module.training
    module.train(False)
    try:
        yield
    finally:
        module.train(was_training)


class IQL(Agent):
    config_class = IQLConfig
    seed_axis = True
    policy_goals = True
    def __init__(self, cfg: IQLConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.value = NormedMLP(obs_dim, 1, cfg.hidden_dims) if cfg.layer_norm else mlp(obs_dim, 1, cfg.hidden_dims)
        self.critic = EnsembleCritic(obs_dim, act_dim, n=2, hidden=cfg.hidden_dims, layer_norm=cfg.layer_norm)
        self.critic_target = frozen_copy(self.critic)
        if cfg.policy == "gaussian":
            self.actor = GaussianActor(obs_dim, act_dim, cfg.hidden_dims, cfg.log_std_min, cfg.log_std_max,
                                       squash_mean=True, dropout=cfg.actor_dropout)
        else:
            self.actor = DeterministicActor(obs_dim, act_dim, cfg.hidden_dims)
        # a tensor lr (updated in place) keeps a compiled actor step from recompiling as the lr decays
        actor_lr = cfg.actor_lr if cfg.actor_lr_schedule_steps is None else torch.tensor(cfg.actor_lr)
        self.optimizers = {"value": adam(self.value, cfg.value_lr), "actor": adam(self.actor, actor_lr),
                           "critic": adam(self.critic, cfg.critic_lr)}

    def before_update(self) -> None:
        if self.cfg.actor_lr_schedule_steps is not None:
            lr = cosine_lr(self.cfg.actor_lr, self.num_updates, self.cfg.actor_lr_schedule_steps)
            self.optimizers["actor"].param_groups[0]["lr"].fill_(lr)

    def iteration(self, batch: Batch, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        metrics, target_q = self.value_step(batch)
        metrics.update(self.actor_step(batch, target_q))
        metrics.update(self.critic_step(batch))
        return metrics

    def value_step(self, batch: Batch) -> tuple[dict[str, Tensor], Tensor]:
        """Expectile regression of V(s) on min_j Q_target_j(s, a); also returns that target Q (B,)."""
        with torch.no_grad():
            target_q = self.critic_target(batch.obs, batch.actions).min(dim=-2).values
        v = self.value(batch.obs).squeeze(-1)
        value_loss = expectile_loss(target_q - v, self.cfg.expectile)
        self.optimize("value", value_loss)
        return {"value_loss": value_loss.detach(), "v": v.mean(dim=-1).detach()}, target_q

    def actor_step(self, batch: Batch, target_q: Tensor) -> dict[str, Tensor]:
        """Advantage-weighted regression with the advantage min_j Q_target_j(s, a) - V(s) (V as updated), or
        DDPG+BC on the online critic (``extraction=ddpgbc``); on the batch's ``actor_obs`` (the policy's own
        goals where goal relabelling gives it some)."""
        cfg = self.cfg
        obs = batch.actor_obs
        if cfg.policy == "gaussian":
            nll = -self.actor.log_prob(obs, batch.actions)
        else:
            prediction = self.actor(obs)
            nll = (prediction - batch.actions).pow(2).sum(-1)
        if cfg.extraction == "ddpgbc":
            mode = self.actor.mode(obs) if cfg.policy == "gaussian" else prediction  # one actor forward
            q = self.critic(obs, mode.clamp(-1.0, 1.0)).min(dim=-2).values
            q_term = -q.mean(dim=-1) / q.abs().mean(dim=-1).detach()
            actor_loss = q_term + cfg.alpha * nll.mean(dim=-1)
            self.optimize("actor", actor_loss)  # gradients reach the actor only
            return {"actor_loss": actor_loss.detach(), "actor_q": q.mean(dim=-1).detach(),
                    "bc_nll": nll.mean(dim=-1).detach()}
        with torch.no_grad():
            if batch.policy_obs is not None:  # the value step's target Q was for the transition's goals
                target_q = self.critic_target(obs, batch.actions).min(dim=-2).values
            advantage = target_q - self.value(obs).squeeze(-1)
            weight = torch.exp(cfg.beta * advantage).clamp(max=cfg.exp_adv_max)
        actor_loss = (weight * nll).mean(dim=-1)
        self.optimize("actor", actor_loss)
        return {"actor_loss": actor_loss.detach(), "advantage": advantage.mean(dim=-1),
                "awr_weight": weight.mean(dim=-1),
                "awr_weight_clipped_fraction": (weight >= cfg.exp_adv_max).float().mean(dim=-1)}

    def critic_step(self, batch: Batch) -> dict[str, Tensor]:
        """TD regression of both Q heads on r + gamma (1 - d) V(s'), then the Polyak target update."""
        cfg = self.cfg
        with torch.no_grad():
            next_v = self.value(batch.next_obs).squeeze(-1)
            y = batch.rewards + cfg.discount * (1.0 - batch.dones) * next_v
        q = self.critic(batch.obs, batch.actions)  # (2, B)
        critic_loss = (q - y.unsqueeze(-2)).pow(2).mean(dim=-1).sum(dim=-1)
        self.optimize("critic", critic_loss)
        polyak_update(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": critic_loss.detach(), "q_data": q.mean(dim=(-2, -1)).detach(), "target_q": y.mean(-1)}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        with evaluation_mode(self.actor):
            if self.cfg.policy == "deterministic":
                return self.actor(obs)
            return self.actor.mode(obs) if deterministic else self.actor.sample(obs).clamp(-1.0, 1.0)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Gaussian policy: log N(a; tanh(mu(s)), sigma^2), the density the policy loss maximises, of the
        (squashed, [-1, 1]) action itself with no tanh Jacobian (docs/algorithms/iql.md); deterministic
        policy: the base class's unit Gaussian around pi(s)."""
        if self.cfg.policy == "deterministic":
            return super().log_prob(obs, actions)
        with evaluation_mode(self.actor):
            return self.actor.log_prob(obs, actions)
