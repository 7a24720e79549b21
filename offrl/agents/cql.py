"""CQL, Conservative Q-Learning (Kumar, Zhou, Tucker & Levine, NeurIPS 2020; docs/algorithms/cql.md), for continuous
actions: the SAC backbone whose critics also push down a soft maximum of Q over sampled actions and push up Q on the
dataset's actions. Cal-QL (Nakamoto et al., NeurIPS 2023; docs/algorithms/calql.md) is CQL whose pushed-down policy
actions are valued at least at the data's Monte-Carlo return, for offline-to-online fine-tuning.

Per iteration on a batch (s, a, r, s', d) (Cal-QL: and G, each row's discounted return-to-go, ``Batch.returns``),
with N = cql_n_actions and K = N with the max backup, else 1:
    target:   a'_k ~ pi(.|s'), k = 1..K
              y = r + gamma (1 - d) max_k [min_j Qbar_j(s', a'_k)  (- alpha log pi(a'_k|s') with backup_entropy)]
    samples:  a^u_i ~ U[-1, 1]^|A|,  a^s_i ~ pi(.|s),  a^s'_i ~ pi(.|s'),  i = 1..N    (no gradient to pi)
    Cal-QL:   Q_j(s, a^s_i) <- max(Q_j(s, a^s_i), G),  Q_j(s, a^s'_i) <- max(Q_j(s, a^s'_i), G)
    gap:      C_j = mean_B [T logsumexp_i(x_ji / T) - Q_j(s, a)],  x_j = the 3N values
              Q_j(s, a^u_i) - log U,  Q_j(s, a^s'_i) - log pi(a^s'_i|s'),  Q_j(s, a^s_i) - log pi(a^s_i|s)
              (without importance sampling: the raw 3N values and Q_j(s, a))
    critics:  L_Q = sum_j [mean_B (Q_j(s, a) - y)^2 + w C_j],  w = cql_alpha,
              Lagrange: w (C_j - tau) with w = alpha' cql_alpha (alpha' held fixed in L_Q)
    alpha':   L_alpha' = -alpha' cql_alpha mean_j (sg(C_j) - tau),  alpha' = exp(log alpha')   (Lagrange only)
    policy:   L_pi = mean_B [alpha log pi(a~|s) - min_j Q_j(s, a~)],  a~ ~ pi(.|s) reparameterised
    alpha:    L_alpha = -mean_B [log alpha sg(log pi(a~|s) + H_target)]
    Polyak:   Qbar <- tau Q + (1 - tau) Qbar
Every loss is computed from the parameters before the update, as in young-geng/CQL, CORL and the Cal-QL authors' code
(one gradient of all losses); then the actor, alpha, the critics and alpha' take their steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from offrl.agents.base import Agent
from offrl.agents.sac import SACConfig
from offrl.core.config import copies, non_negative, positive, widths
from offrl.core.nets import EnsembleCritic, TanhGaussianActor, frozen_copy, polyak_update
from offrl.core.optim import adam
from offrl.data.store import Batch

LOG_ALPHA_PRIME_INIT = 1.0  # log alpha' at the start of the Lagrange variant (young-geng/CQL, CORL, Cal-QL's code)
ALPHA_PRIME_MAX = 1e6  # alpha' is clipped to [0, 1e6] (young-geng/CQL, CORL, Cal-QL's code)


@dataclass
class CQLConfig(SACConfig):
    """Defaults: CORL's Gym-MuJoCo configuration (configs/offline/cql/<env>/<dataset>_v2.yaml: the same for every
    locomotion dataset but hopper-medium's rewards, conf/tuning/cql_hopper-medium.yaml); their sources are listed
    in docs/algorithms/cql.md#configuration."""

    name: str = "cql"
    hidden_dims: list[int] = widths([256, 256, 256])  # hidden layers of the policy and of each critic (CORL: 3 x 256)
    normalize_states: bool = True  # standardise states with dataset statistics (CORL: normalize true)
    actor_lr: float = positive(3e-5)  # Adam learning rate of the policy (CORL; the authors' README: 1e-4 or 3e-4)
    alpha_lr: float = positive(3e-5)  # Adam learning rate of log alpha (CORL: the policy's rate)
    cql_alpha: float = non_negative(10.0)  # weight of the conservative gap C_j (CORL; the authors' README: 5 or 10)
    cql_n_actions: int = copies(10)  # N: actions sampled per state from U, pi(.|s) and pi(.|s') each
    cql_importance_sample: bool = True  # subtract each sampled action's log-density inside the log-sum-exp
    cql_temp: float = positive(1.0)  # T, the temperature of the log-sum-exp
    cql_lagrange: bool = False  # learn the weight alpha' cql_alpha by dual descent on the gap (CQL-Lagrange)
    cql_target_action_gap: float = non_negative(1.0)  # tau: the gap C_j the Lagrange variant steers towards
    cql_max_target_backup: bool = False  # TD target from the best of N policy actions at s' instead of one
    backup_entropy: bool = False  # subtract alpha log pi(a'|s') in the TD target, as SAC does (CQL's code: no)
    orthogonal_init: bool = True  # critics: orthogonal weights (gain sqrt 2; output 0.01), zero biases (CORL)


class CQL(Agent):
    config_class = CQLConfig
    seed_axis = True  # noise from noise_like, losses reduced over the trailing batch dims, scalars in ParameterLists

    def __init__(self, cfg: CQLConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.actor = TanhGaussianActor(obs_dim, act_dim, cfg.hidden_dims)
        self.critic = EnsembleCritic(obs_dim, act_dim, n=cfg.num_critics, hidden=cfg.hidden_dims)
        corl_init_(self.actor, self.critic, cfg.orthogonal_init)
        self.critic_target = frozen_copy(self.critic)
        # the learned scalars live in ParameterLists, which offrl.training.seeds stacks per seed
        self.log_alpha = nn.ParameterList([nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))])
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.backup_samples = cfg.cql_n_actions if cfg.cql_max_target_backup else 1  # K
        self.optimizers = {"actor": adam(self.actor, cfg.actor_lr), "critic": adam(self.critic, cfg.critic_lr),
                           "alpha": adam(self.log_alpha, cfg.alpha_lr)}
        if cfg.cql_lagrange:  # alpha' learns at the critics' rate (young-geng/CQL, CORL)
            self.log_alpha_prime = nn.ParameterList([nn.Parameter(torch.tensor(LOG_ALPHA_PRIME_INIT))])
            self.optimizers["alpha_prime"] = adam(self.log_alpha_prime, cfg.critic_lr)

    def prepare(self, batch: Batch) -> dict[str, Tensor]:
        """The standard normal draws of every sample of the coming update, from the agent's noise stream(s): per
        state 1 for the policy loss, K for the TD target, N each for the pi(.|s) and pi(.|s') actions of the gap
        and N for its uniform actions."""
        draws = 1 + self.backup_samples + 3 * self.cfg.cql_n_actions
        rows = batch.actions.unsqueeze(-2).expand(*batch.actions.shape[:-1], draws, self.act_dim)
        return {"noise": self.noise_like(rows)}

    def iteration(self, batch: Batch, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        n = self.cfg.cql_n_actions
        xi_policy, xi_target, xi_here, xi_next, xi_uniform = inputs["noise"].split(
            [1, self.backup_samples, n, n, n], dim=-2)
        alpha = self.log_alpha[0].exp().detach()
        actions, log_prob = self.actor(batch.obs, xi_policy.squeeze(-2))
        q_policy = self.critic(batch.obs, actions).min(dim=-2).values
        actor_loss = (alpha.unsqueeze(-1) * log_prob - q_policy).mean(dim=-1)
        alpha_loss = -(self.log_alpha[0].unsqueeze(-1) * (log_prob.detach() + self.target_entropy)).mean(dim=-1)
        y = self.td_target(batch, alpha, xi_target)
        sampled, log_density = self.sampled_actions(batch, xi_here, xi_next, xi_uniform)
        critic_loss, gap, metrics = self.critic_loss(batch, y, sampled, log_density)
        self.optimize("actor", actor_loss)
        self.optimize("alpha", alpha_loss)
        self.optimize("critic", critic_loss)
        if self.cfg.cql_lagrange:
            metrics.update(self.alpha_prime_step(gap))
        polyak_update(self.critic_target, self.critic, self.cfg.tau)
        metrics.update(actor_loss=actor_loss.detach(), alpha=alpha, alpha_loss=alpha_loss.detach(),
                       entropy=-log_prob.detach().mean(dim=-1))
        return metrics

    @torch.no_grad()
    def td_target(self, batch: Batch, alpha: Tensor, noise: Tensor) -> Tensor:
        """y = r + gamma (1 - d) max over K policy actions at s' of min_j Qbar_j (K = 1: one action), minus
        alpha log pi of the chosen action with ``backup_entropy``; ``noise`` (..., B, K, |A|)."""
        cfg, k = self.cfg, self.backup_samples
        next_actions, next_log_prob = self.actor.sample_n(batch.next_obs, noise)  # (..., B, K, |A|), (..., B, K)
        next_obs = batch.next_obs.repeat_interleave(k, dim=-2)
        next_q = self.critic_target(next_obs, next_actions.flatten(-3, -2)).min(dim=-2).values.unflatten(-1, (-1, k))
        best, index = next_q.max(dim=-1)
        if cfg.backup_entropy:
            chosen = next_log_prob.gather(-1, index.unsqueeze(-1)).squeeze(-1)
            best = best - alpha.unsqueeze(-1) * chosen
        return batch.rewards + cfg.discount * (1.0 - batch.dones) * best

    @torch.no_grad()
    def sampled_actions(self, batch: Batch, xi_here: Tensor, xi_next: Tensor, xi_uniform: Tensor
                        ) -> tuple[Tensor, Tensor]:
        """The 3N actions of the gap per state, (..., B, 3N, |A|) in the order uniform, pi(.|s'), pi(.|s), and the
        log-density each was drawn with, (..., B, 3N): log U = -|A| log 2, log pi(a|s'), log pi(a|s). Uniform
        actions come from the normal draws through the normal CDF: erf(xi / sqrt 2) ~ U(-1, 1)."""
        here, log_here = self.actor.sample_n(batch.obs, xi_here)
        there, log_there = self.actor.sample_n(batch.next_obs, xi_next)
        uniform = torch.erf(xi_uniform / math.sqrt(2.0))
        log_uniform = torch.full_like(log_here, -self.act_dim * math.log(2.0))
        return torch.cat([uniform, there, here], dim=-2), torch.cat([log_uniform, log_there, log_here], dim=-1)

    def critic_loss(self, batch: Batch, y: Tensor, sampled: Tensor, log_density: Tensor
                    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """L_Q (one per seed), the gaps C_j (..., n) and the critics' diagnostics."""
        cfg, n = self.cfg, self.cfg.cql_n_actions
        q_data = self.critic(batch.obs, batch.actions)  # (..., n_critics, B)
        obs = batch.obs.repeat_interleave(3 * n, dim=-2)
        q_sampled = self.critic(obs, sampled.flatten(-3, -2)).unflatten(-1, (-1, 3 * n))  # (..., n_critics, B, 3N)
        q_uniform, q_policy = q_sampled.split([n, 2 * n], dim=-1)
        metrics: dict[str, Tensor] = {}
        bound = self.lower_bound(batch)
        if bound is not None:  # Cal-QL: the policy actions are valued at least at the return-to-go
            floor = bound.unsqueeze(-1).unsqueeze(-3)  # (..., 1, B, 1)
            metrics["bound_rate"] = (q_policy < floor).float().mean(dim=(-3, -2, -1)).detach()
            q_policy = torch.maximum(q_policy, floor)
        q_sampled = torch.cat([q_uniform, q_policy], dim=-1)
        if cfg.cql_importance_sample:
            values = q_sampled - log_density.unsqueeze(-3)
        else:
            values = torch.cat([q_sampled, q_data.unsqueeze(-1)], dim=-1)
        soft_max = cfg.cql_temp * torch.logsumexp(values / cfg.cql_temp, dim=-1)  # (..., n_critics, B)
        gap = (soft_max - q_data).mean(dim=-1)  # C_j
        td = (q_data - y.unsqueeze(-2)).pow(2).mean(dim=-1)
        if cfg.cql_lagrange:
            alpha_prime = self.alpha_prime().detach().unsqueeze(-1)
            penalty = alpha_prime * cfg.cql_alpha * (gap - cfg.cql_target_action_gap)
        else:
            penalty = cfg.cql_alpha * gap
        critic_loss = (td + penalty).sum(dim=-1)
        metrics.update(critic_loss=critic_loss.detach(), td_loss=td.sum(dim=-1).detach(),
                       cql_gap=gap.mean(dim=-1).detach(), q_data=q_data.mean(dim=(-2, -1)).detach(),
                       q_uniform=q_uniform.mean(dim=(-3, -2, -1)).detach(), target_q=y.mean(dim=-1))
        return critic_loss, gap.detach(), metrics

    def alpha_prime(self) -> Tensor:
        """alpha' = exp(log alpha'), clipped to [0, ALPHA_PRIME_MAX]."""
        return self.log_alpha_prime[0].exp().clamp(0.0, ALPHA_PRIME_MAX)

    def alpha_prime_step(self, gap: Tensor) -> dict[str, Tensor]:
        """Dual descent on alpha': it grows while the critics' mean gap exceeds tau and shrinks below it."""
        cfg = self.cfg
        alpha_prime = self.alpha_prime()
        loss = -alpha_prime * cfg.cql_alpha * (gap - cfg.cql_target_action_gap).mean(dim=-1)
        self.optimize("alpha_prime", loss)
        return {"alpha_prime": alpha_prime.detach(), "alpha_prime_loss": loss.detach()}

    def lower_bound(self, batch: Batch) -> Tensor | None:
        """The floor of the policy actions' Q values in the gap, per row; CQL: none."""
        return None

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        return self.actor.mode(obs) if deterministic else self.actor(obs)[0]

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The tanh-Gaussian density of actions in (-1, 1), change of variables included (as SAC's)."""
        return self.actor.log_prob(obs, actions)


def corl_init_(actor: TanhGaussianActor, critic: EnsembleCritic, orthogonal: bool) -> None:
    """CORL's initialisation. The policy's output layer: Xavier-uniform weights with gain 0.01 and zero biases but
    -1 for the log-std half (CORL adds a learned offset of -1 to the log-std: sigma starts near exp(-1)).
    ``orthogonal``: each critic's hidden layers get orthogonal weights with gain sqrt 2, its output layer gain
    0.01, all biases zero."""
    last = actor.trunk[-1]
    nn.init.xavier_uniform_(last.weight, gain=0.01)
    with torch.no_grad():
        last.bias.zero_()
        last.bias[last.out_features // 2:] = -1.0
    if not orthogonal:
        return
    layers = critic.net.layers
    for i, layer in enumerate(layers):
        gain = 0.01 if i == len(layers) - 1 else math.sqrt(2.0)
        for member in layer.weight:
            nn.init.orthogonal_(member, gain=gain)
        nn.init.zeros_(layer.bias)


@dataclass
class CalQLConfig(CQLConfig):
    """Defaults: the official Cal-QL code's (JaxCQL/conservative_sac_main.py and ConservativeSAC's config); their
    sources are listed in docs/algorithms/calql.md#configuration."""

    name: str = "calql"
    hidden_dims: list[int] = widths([256, 256])  # hidden layers of the policy and of each critic (official: 256-256)
    normalize_states: bool = False  # the official code trains on raw states
    actor_lr: float = positive(1e-4)  # Adam learning rate of the policy (official policy_lr)
    alpha_lr: float = positive(1e-4)  # Adam learning rate of log alpha (official: the policy's rate)
    cql_alpha: float = non_negative(5.0)  # weight of the conservative gap C_j (official cql_min_q_weight)
    cql_max_target_backup: bool = True  # TD target from the best of N policy actions at s' (official default)


class CalQL(CQL):
    config_class = CalQLConfig
    dataset_columns = ("returns",)  # G, the rows' discounted returns-to-go: the floor of the policy actions' Q

    def lower_bound(self, batch: Batch) -> Tensor | None:
        """The row's Monte-Carlo return-to-go under the behaviour policy (dataset rows) or the agent's own policy
        (online rows, added with their returns when their episode ends)."""
        return batch.returns
