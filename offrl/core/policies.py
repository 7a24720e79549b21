"""Policy classes reusable by any SAC-style agent (actor.forward(obs) -> (action, log_prob))."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from offrl.core.nets import mlp, tanh_gaussian_log_prob


class GaussianMixturePolicy(nn.Module):
    """PMOE's policy (docs/algorithms/pmoe.md): K tanh-Gaussian experts on a shared trunk plus a router.

    trunk h = MLP(s); expert k: a_k = tanh(mu_k(h) + sigma_k(h) xi_k), log sigma_k in [-20, 2];
    router w(s) = softmax(Linear(sg(h))): the router sees a detached trunk feature, so router losses
    never reach the trunk or the experts.
    """

    output_layers = ("means", "log_stds", "router")  # computed in fp32 under bf16 autocast (offrl.core.precision)

    def __init__(self, obs_dim: int, act_dim: int, num_experts: int = 4, hidden: Sequence[int] = (256, 256),
                 log_std_min: float = -20.0, log_std_max: float = 2.0) -> None:
        super().__init__()
        self.k, self.act_dim = num_experts, act_dim
        self.trunk = nn.Sequential(*list(mlp(obs_dim, hidden[-1], hidden[:-1]).children()), nn.ReLU())
        self.means = nn.Linear(hidden[-1], num_experts * act_dim)
        self.log_stds = nn.Linear(hidden[-1], num_experts * act_dim)
        self.router = nn.Linear(hidden[-1], num_experts)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def heads(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Expert means and log-stds (B, K, A) and router logits (B, K)."""
        h = self.trunk(obs)
        shape = (obs.shape[0], self.k, self.act_dim)
        log_std = self.log_stds(h).view(shape).clamp(self.log_std_min, self.log_std_max)
        return self.means(h).view(shape), log_std, self.router(h.detach())

    def components(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One reparameterised sample per expert: actions (B, K, A), their expert log-densities (B, K),
        router weights (B, K)."""
        mean, log_std, logits = self.heads(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std), logits.softmax(-1)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Sample k ~ Categorical(w(s)), then that expert's action and its expert log-density (the
        quantity PMOE uses in the soft target)."""
        actions, log_probs, weights = self.components(obs)
        k = torch.multinomial(weights, 1)  # (B, 1)
        return actions.gather(1, k[:, :, None].expand(-1, 1, self.act_dim))[:, 0], log_probs.gather(1, k)[:, 0]

    def mode(self, obs: Tensor) -> Tensor:
        """Deterministic action: tanh of the mean of the expert the router weighs most (the official
        code samples the expert even here; argmax makes evaluation deterministic)."""
        mean, _, logits = self.heads(obs)
        k = logits.argmax(-1)
        return torch.tanh(mean[torch.arange(len(obs), device=obs.device), k])

    def mixture_log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log sum_k w_k(s) pi_k(a|s) for actions strictly inside (-1, 1)."""
        mean, log_std, logits = self.heads(obs)
        u = torch.atanh(actions.clamp(-1 + 1e-6, 1 - 1e-6))[:, None, :].expand_as(mean)
        return torch.logsumexp(F.log_softmax(logits, -1) + tanh_gaussian_log_prob(u, mean, log_std), dim=-1)
