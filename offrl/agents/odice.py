"""O-DICE (Mao et al., ICLR 2024; docs/algorithms/odice.md): DICE value learning with the orthogonal-gradient update,
then policy extraction by weighted behaviour cloning.

Value step (twin V, target V_bar = EMA, min over heads):
    d_fwd = r + gamma (1 - d) sg(V_bar(s')) - V(s)          forward residual, gradient through V(s)
    d_bwd = r + gamma (1 - d) V(s')     - sg(V_bar(s))      backward residual, gradient through V(s')
    L = (1 - lambda) E[V(s)] + lambda E[f*(d_fwd)] + lambda eta E[f*(d_bwd)]
    g_f = grad lambda E f*(d_fwd),  g_b = grad lambda eta E f*(d_bwd)   (over ALL value parameters)
    orthogonal: g = grad (1 - lambda) E V(s) + g_f + (g_b - <g_f, g_b> / ||g_f||^2 g_f)
    true:       g = ... + g_f + g_b          semi: g = ... + g_f
Policy step:  L_pi = E[ w(sg(d_fwd)) * -log pi(a|s) ],  w = clip(max(d, 0), 0, 100) (the official code)
Pearson chi^2: f*(y) = y w - (w - 1)^2 with w = max(y / 2 + 1, 0); reverse KL: f*(y) = exp(y - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from offrl.agents.base import Agent, AgentConfig
from offrl.core.config import fraction, non_negative, one_of, positive, rate, widths
from offrl.core.nets import EnsembleMLP, GaussianActor, frozen_copy, polyak_update
from offrl.core.optim import adam
from offrl.data.store import Batch


@dataclass
class ODICEConfig(AgentConfig):
    name: str = "odice"
    normalize_states: bool = False  # the official RL configs do not normalise states
    hidden_dims: list[int] = widths([1024, 1024])  # policy (hard-coded in the code)
    value_hidden_dims: list[int] = widths([256, 256])  # each V head
    value_layer_norm: bool = True  # MuJoCo: on; AntMaze: off
    twin_value: bool = True  # two V heads, targets take their min (official AntMaze large: one)
    value_lr: float = positive(2e-4)  # Adam learning rate of V
    actor_lr: float = positive(2e-4)  # Adam learning rate of the policy
    actor_weight_decay: float = non_negative(1e-4)  # L2 in Adam, policy only
    discount: float = fraction(0.99)  # gamma
    tau: float = rate(0.005)  # target-V EMA rate
    lam: float = fraction(0.6)  # lambda, weight of the f* terms (per-dataset values: the paper's App. D, not retrieved)
    eta: float = non_negative(1.0)  # weight of the backward residual; CLI default, as for lambda
    divergence: str = one_of("pearson_chi2", "reverse_kl")  # pearson_chi2 | reverse_kl
    update_mode: str = one_of("orthogonal", "true", "semi")  # orthogonal (O-DICE) | true (plain sum) | semi (forward)
    policy_weight: str = one_of("residual", "f_prime_inverse")  # residual: max(d, 0) | f_prime_inverse: max(d/2 + 1, 0)
    max_weight: float = positive(100.0)  # upper clip of the policy weights

    def __post_init__(self) -> None:
        # YAML and Hydra's command line read `agent.update_mode=true` as the boolean True ("True" once typed)
        self.update_mode = str(self.update_mode).lower()


def f_star(y: Tensor, divergence: str) -> Tensor:
    if divergence == "pearson_chi2":
        omega = (y / 2 + 1).clamp(min=0)
        return y * omega - (omega - 1) ** 2
    return torch.exp(y - 1)


def policy_weights(residual: Tensor, cfg: ODICEConfig) -> Tensor:
    if cfg.divergence == "reverse_kl":
        weight = torch.exp(residual - 1)
    elif cfg.policy_weight == "residual":
        weight = residual.clamp(min=0)
    else:
        weight = (residual / 2 + 1).clamp(min=0)
    return weight.clamp(max=cfg.max_weight)


def dot(a: list[Tensor], b: list[Tensor], per_seed: bool = False) -> Tensor:
    """Inner product of two gradients flattened over all their tensors; ``per_seed``: over all dims but the
    leading seed axis, one product per seed (offrl.training.seeds), so each seed's projection is its own."""
    if per_seed:
        return sum((x * y).flatten(1).sum(1) for x, y in zip(a, b))
    return sum((x * y).sum() for x, y in zip(a, b))


def combine_gradients(g_v: list[Tensor], g_f: list[Tensor], g_b: list[Tensor] | None, mode: str,
                      per_seed: bool = False) -> list[Tensor]:
    """The value gradient of each update mode; the projection is over all parameters at once (per seed)."""
    if mode == "semi":
        return [v + f for v, f in zip(g_v, g_f)]
    if mode == "true":
        return [v + f + b for v, f, b in zip(g_v, g_f, g_b)]
    c = dot(g_f, g_b, per_seed) / dot(g_f, g_f, per_seed).clamp(min=1e-10)
    return [v + (1 - (c.view(-1, *[1] * (f.dim() - 1)) if per_seed else c)) * f + b for v, f, b in zip(g_v, g_f, g_b)]


class ODICE(Agent):
    config_class = ODICEConfig
    seed_axis = True  # the projection is per seed (dot(..., per_seed))
    def __init__(self, cfg: ODICEConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        heads = 2 if cfg.twin_value else 1
        self.value = EnsembleMLP(heads, obs_dim, 1, cfg.value_hidden_dims, cfg.value_layer_norm)
        self.value_target = frozen_copy(self.value)
        self.actor = GaussianActor(obs_dim, act_dim, cfg.hidden_dims)
        self.optimizers = {
            "value": adam(self.value, cfg.value_lr),
            "actor": adam(self.actor, cfg.actor_lr, weight_decay=cfg.actor_weight_decay),
        }

    def iteration(self, batch: Batch, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        metrics, forward_residual = self.value_step(batch)
        metrics.update(self.actor_step(batch, forward_residual))
        return metrics

    def residuals(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """V(s) (heads, B), forward and backward residuals (heads, B) (a seed axis in front: (K, heads, B))."""
        cfg = self.cfg
        v, v_next = self.value(batch.obs).squeeze(-1), self.value(batch.next_obs).squeeze(-1)
        with torch.no_grad():
            target_v = self.value_target(batch.obs).squeeze(-1).min(dim=-2, keepdim=True).values
            target_v_next = self.value_target(batch.next_obs).squeeze(-1).min(dim=-2, keepdim=True).values
        rewards, not_done = batch.rewards.unsqueeze(-2), cfg.discount * (1.0 - batch.dones.unsqueeze(-2))
        forward = rewards + not_done * target_v_next - v
        backward = rewards + not_done * v_next - target_v
        return v, forward, backward

    def value_step(self, batch: Batch) -> tuple[dict[str, Tensor], Tensor]:
        cfg = self.cfg
        v, forward, backward = self.residuals(batch)
        params = list(self.value.parameters())
        per_seed = self.num_seeds is not None
        batch_dims = (-2, -1)  # heads and batch: one loss per seed with a seed axis
        loss_v = (1 - cfg.lam) * v.mean(dim=batch_dims)
        loss_f = cfg.lam * f_star(forward, cfg.divergence).mean(dim=batch_dims)
        loss_b = cfg.lam * cfg.eta * f_star(backward, cfg.divergence).mean(dim=batch_dims)
        g_f = torch.autograd.grad(loss_f.sum(), params, retain_graph=True)
        g_v = torch.autograd.grad(loss_v.sum(), params, retain_graph=cfg.update_mode != "semi")
        g_b = torch.autograd.grad(loss_b.sum(), params) if cfg.update_mode != "semi" else None
        for p, g in zip(params, combine_gradients(g_v, g_f, g_b, cfg.update_mode, per_seed)):
            p.grad = g
        self.apply_gradients("value")
        polyak_update(self.value_target, self.value, cfg.tau)
        metrics = {"value_loss": (loss_v + loss_f + loss_b).detach(), "v": v.mean(dim=batch_dims).detach(),
                   "forward_residual": forward.mean(dim=batch_dims).detach()}
        if g_b is not None:
            metrics["gradient_cosine"] = dot(g_f, g_b, per_seed) / (
                torch.sqrt(dot(g_f, g_f, per_seed) * dot(g_b, g_b, per_seed)) + 1e-12)
        return metrics, forward.detach()

    def actor_step(self, batch: Batch, forward_residual: Tensor) -> dict[str, Tensor]:
        weight = policy_weights(forward_residual, self.cfg).mean(dim=-2)  # heads' weights averaged
        loss = (weight * -self.actor.log_prob(batch.obs, batch.actions)).mean(dim=-1)
        self.optimize("actor", loss)
        return {"actor_loss": loss.detach(), "policy_weight": weight.mean(dim=-1),
                "weight_zero_fraction": (weight == 0).float().mean(dim=-1)}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor.mode(obs) if deterministic else self.actor.sample(obs).clamp(-1.0, 1.0)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The policy's own Gaussian density (the one its weighted-BC loss maximises)."""
        return self.actor.log_prob(obs, actions)
