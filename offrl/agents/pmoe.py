"""PMOE (Ren et al., 2021; docs/algorithms/pmoe.md): SAC with a Gaussian-mixture policy (``GaussianMixturePolicy``).

Per gradient step (after SAC's critic step, whose soft target samples the expert k' ~ w(s')):
    a_k ~ pi_k(.|s) for every expert k,  q_k = min_j Q_j(s, a_k),  k* = argmax_k q_k
    frequency (the paper):  L_pi = E[alpha l_k* - q_k*],   L_w = MSE(onehot(k*), w(s))
    gumbel:          a = sum_k y_k a_k, y = straight-through Gumbel-softmax(log w);  L = E[alpha l - q(a)]
    score_function:  k ~ w(s);  L = E[alpha l_k - q_k] - E[sg(q_k - alpha l_k - b) log w_k(s)],  b = batch mean
    L_alpha = -E[log_alpha sg(l + H_target)] with l the log-density of the expert used.
The critic is stepped before the policy, whose Q is then recomputed (the official update order fails
on modern PyTorch: docs/algorithms/pmoe.md#implementation-notes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from offrl.agents.sac import SAC, SACConfig
from offrl.core.config import copies, one_of, positive
from offrl.core.policies import GaussianMixturePolicy
from offrl.data.store import Batch


@dataclass
class PMOEConfig(SACConfig):
    name: str = "pmoe"
    num_experts: int = copies(4)  # K, the Gaussian experts of the mixture policy
    estimator: str = one_of("frequency", "gumbel", "score_function")  # frequency (PMOE) | gumbel | score_function
    gumbel_temperature: float = positive(1.0)  # temperature of the Gumbel-softmax (estimator=gumbel)


class PMOE(SAC):
    config_class = PMOEConfig

    def make_actor(self, obs_dim: int, act_dim: int) -> GaussianMixturePolicy:
        return GaussianMixturePolicy(obs_dim, act_dim, self.cfg.num_experts, self.cfg.hidden_dims)

    def deterministic_policy(self) -> nn.Module:
        """``act(obs, deterministic=True)`` for export: the router's argmax expert picked by a gather,
        where ``GaussianMixturePolicy.mode`` indexes with ``arange(len(obs))``, which a trace would fix
        to the example's batch size."""
        return MixtureMode(self.actor)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The mixture density log sum_k w_k(s) pi_k(a|s) (actions clamped inside (-1, 1) as for SAC)."""
        return self.actor.mixture_log_prob(obs, actions)

    def policy_step(self, batch: Batch) -> dict[str, Tensor]:
        alpha = self.log_alpha.exp().detach()
        actions, log_probs, weights = self.actor.components(batch.obs)  # (B, K, A), (B, K), (B, K)
        batch_size, k, act_dim = actions.shape
        obs = batch.obs[:, None, :].expand(-1, k, -1).reshape(batch_size * k, -1)
        q = self.critic(obs, actions.reshape(batch_size * k, act_dim)).min(dim=0).values.view(batch_size, k)
        rows = torch.arange(batch_size, device=q.device)
        if self.cfg.estimator == "frequency":
            best = q.detach().argmax(dim=1)
            used_log_prob = log_probs[rows, best]
            router_loss = F.mse_loss(weights, F.one_hot(best, k).float())
            policy_loss = (alpha * used_log_prob - q[rows, best]).mean() + router_loss
        elif self.cfg.estimator == "gumbel":
            y = F.gumbel_softmax(weights.clamp_min(1e-8).log(), tau=self.cfg.gumbel_temperature, hard=True)
            mixed = (y[:, :, None] * actions).sum(1)
            used_log_prob = (y * log_probs).sum(1)
            policy_loss = (alpha * used_log_prob - self.critic(batch.obs, mixed).min(dim=0).values).mean()
        else:
            chosen = torch.multinomial(weights.detach(), 1)[:, 0]
            used_log_prob = log_probs[rows, chosen]
            value = q[rows, chosen] - alpha * used_log_prob
            advantage = (value - value.mean()).detach()
            policy_loss = -value.mean() - (advantage * weights[rows, chosen].clamp_min(1e-8).log()).mean()
        self.optimize("actor", policy_loss)
        alpha_loss = -(self.log_alpha * (used_log_prob.detach() + self.target_entropy)).mean()
        self.optimize("alpha", alpha_loss)
        metrics = {"actor_loss": policy_loss.detach(), "alpha": alpha, "alpha_loss": alpha_loss.detach(),
                   "entropy": -used_log_prob.mean().detach(),
                   "router_entropy": -(weights * weights.clamp_min(1e-8).log()).sum(1).mean().detach()}
        stds = self.actor.heads(batch.obs)[1].exp().mean(dim=(0, 2)).detach()
        for expert in range(k):
            metrics[f"expert{expert}_usage"] = weights[:, expert].mean().detach()
            metrics[f"expert{expert}_action_std"] = stds[expert]
        return metrics


class MixtureMode(nn.Module):
    """tanh of the mean of the expert the router weighs most (``GaussianMixturePolicy.mode``), for any batch size."""

    def __init__(self, actor: GaussianMixturePolicy) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: Tensor) -> Tensor:
        mean, _, logits = self.actor.heads(obs)
        k = logits.argmax(-1)[:, None, None].expand(-1, 1, mean.shape[-1])
        return torch.tanh(mean.gather(1, k)[:, 0])
