"""FQL, Flow Q-Learning (Park, Li & Levine, ICML 2025; docs/algorithms/fql.md): a flow-matching policy v_theta
cloned from the data, and a one-step policy mu_omega(s, z) that maximises Q while staying close to what the flow
makes of the same noise z. No gradient ever passes through the flow's iterations; acting takes one forward pass.

Per iteration on a batch (s, a, r, s', d), in the official code's form (one loss of the parameters before the update):
    critic:  a' = clip(mu_omega(s', z'), -1, 1),   z' ~ N(0, I)
             y = r + gamma (1 - d) agg_j Qbar_j(s', a')              agg: mean (q_agg=mean) or min over the 2 critics
             L_Q = mean_j mean_B (Q_j(s, a) - y)^2
    flow BC: x_t = (1 - t) x0 + t a,   x0 ~ N(0, I),  t ~ U[0, 1]
             L_flow = mean_B mean_A (v_theta(s, x_t, t) - (a - x0))^2
    one-step policy, z ~ N(0, I):
             a^flow = clip(Euler_K(v_theta; z, s), -1, 1)              K = flow_steps, no gradient
             q = mean_j Q_j(s, clip(mu_omega(s, z), -1, 1))
             L_mu = alpha mean_B mean_A (mu_omega(s, z) - a^flow)^2 - lambda mean_B q,
             lambda = 1 / sg(mean_B |q|) with normalize_q_loss, else 1
    Polyak:  Qbar <- tau Q + (1 - tau) Qbar
Squared errors are averaged over the action dimensions (jnp.mean in seohongpark/fql agents/fql.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from offrl.agents.base import Agent, AgentConfig
from offrl.core.config import MAX_BATCH, fraction, non_negative, one_of, positive, rate, widths
from offrl.core.nets import EnsembleCritic, frozen_copy, polyak_update
from offrl.core.optim import adam
from offrl.data.store import Batch
from offrl.diffusion import MLPVelocity, euler_sample, flow_matching_loss


@dataclass
class FQLConfig(AgentConfig):
    """Defaults: the official code's (seohongpark/fql agents/fql.py get_config); alpha per task family comes from
    conf/tuning/fql_<dataset>.yaml (the README's commands); sources in docs/algorithms/fql.md#configuration."""

    name: str = "fql"
    hidden_dims: list[int] = widths([512, 512, 512, 512])  # v_theta and mu_omega: the official actor_hidden_dims
    critic_hidden_dims: list[int] = widths([512, 512, 512, 512])  # each critic's hidden layers (value_hidden_dims)
    critic_layer_norm: bool = True  # a LayerNorm after each hidden activation of the critics (official layer_norm)
    normalize_states: bool = False  # the official code feeds raw observations
    lr: float = positive(3e-4)  # Adam learning rate of every network (the official code: one Adam, lr 3e-4)
    discount: float = fraction(0.99)  # gamma (the official default; 0.995 on its long-horizon mazes and antsoccer)
    tau: float = rate(0.005)  # Polyak rate of the target critics, every update
    q_agg: str = one_of("mean", "min")  # agg_j of the TD target over the two target critics (official default mean)
    alpha: float = non_negative(10.0)  # weight of the distillation term; tuned per task family (conf/tuning)
    flow_steps: int = positive(10, most=MAX_BATCH)  # K: Euler steps of the flow's distillation target
    normalize_q_loss: bool = False  # divide the Q term by sg(mean |q|) (the paper: off; the README advises on)


def xavier_critics_(critic: EnsembleCritic) -> None:
    """The official initialisation of every Dense layer (flax variance_scaling(1, 'fan_avg', 'uniform'), zero bias)
    on each member of the ensemble: weights uniform in +-sqrt(6 / (fan_in + fan_out))."""
    with torch.no_grad():
        for layer in critic.net.layers:
            _, fan_in, fan_out = layer.weight.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            layer.weight.uniform_(-bound, bound)
            layer.bias.zero_()


class FQL(Agent):
    config_class = FQLConfig
    seed_axis = True  # losses reduce over the trailing batch dims only; every draw comes from noise_like

    def __init__(self, cfg: FQLConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.flow = MLPVelocity(act_dim, obs_dim, cfg.hidden_dims)  # v_theta(s, x_t, t)
        self.actor = MLPVelocity(act_dim, obs_dim, cfg.hidden_dims, time_input=False)  # mu_omega(s, z)
        gelu = functools.partial(F.gelu, approximate="tanh")  # flax's nn.gelu, the official MLPs' activation
        self.critic = EnsembleCritic(obs_dim, act_dim, n=2, hidden=cfg.critic_hidden_dims,
                                     layer_norm=cfg.critic_layer_norm, norm_after_activation=True, activation=gelu)
        xavier_critics_(self.critic)
        self.critic_target = frozen_copy(self.critic)
        # one Adam over all networks in the official code: Adam is elementwise, so one per network is the same
        self.optimizers = {"actor": adam(self.actor, cfg.lr), "flow": adam(self.flow, cfg.lr),
                           "critic": adam(self.critic, cfg.lr)}

    def prepare(self, batch: Batch) -> dict[str, Tensor]:
        """Every draw of the coming update, from the agent's noise stream(s): per row x0 of the flow-matching path,
        z of the one-step policy, z' of the next action, and t ~ U[0, 1] as Phi(n) of a standard normal n."""
        a = self.act_dim
        x0, z, z_next, n = self.noise_like(batch.actions, 3 * a + 1).split([a, a, a, 1], dim=-1)
        t = 0.5 * (1.0 + torch.erf(n.squeeze(-1) / math.sqrt(2.0)))  # the normal CDF of n: uniform on [0, 1]
        return {"x0": x0, "t": t, "z": z, "z_next": z_next}

    def iteration(self, batch: Batch, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The captured update: the three losses from the parameters before the update, then each network's step
        (the one-step policy's first: its loss reads the critics, whose step would change them) and the target's."""
        cfg = self.cfg
        y = self.td_target(batch, inputs["z_next"])
        q = self.critic(batch.obs, batch.actions)  # (2, B)
        critic_loss = (q - y.unsqueeze(-2)).pow(2).mean(dim=(-2, -1))
        flow_loss = flow_matching_loss(self.flow, batch.actions, batch.obs, x0=inputs["x0"], t=inputs["t"])
        actor_metrics = self.actor_loss(batch, inputs["z"])
        self.optimize("actor", actor_metrics["actor_loss"])
        self.optimize("flow", flow_loss)
        self.optimize("critic", critic_loss)
        polyak_update(self.critic_target, self.critic, cfg.tau)
        metrics = {k: v.detach() for k, v in actor_metrics.items()}
        metrics.update(critic_loss=critic_loss.detach(), flow_loss=flow_loss.detach(),
                       q_data=q.mean(dim=(-2, -1)).detach(), target_q=y.mean(dim=-1))
        return metrics

    @torch.no_grad()
    def td_target(self, batch: Batch, z_next: Tensor) -> Tensor:
        """y = r + gamma (1 - d) agg_j Qbar_j(s', clip(mu_omega(s', z'), -1, 1)): the next action from the one-step
        policy itself (FQL keeps no target policy)."""
        next_actions = self.actor(z_next, None, batch.next_obs).clamp(-1.0, 1.0)
        next_qs = self.critic_target(batch.next_obs, next_actions)  # (2, B)
        next_q = next_qs.mean(dim=-2) if self.cfg.q_agg == "mean" else next_qs.min(dim=-2).values
        return batch.rewards + self.cfg.discount * (1.0 - batch.dones) * next_q

    def actor_loss(self, batch: Batch, z: Tensor) -> dict[str, Tensor]:
        """L_mu: the distillation of the flow's Euler actions from the same noise (no gradient into the flow) and the
        critics' mean value of the clipped action (no step on the critics: only the policy's parameters are
        optimised on this loss)."""
        cfg = self.cfg
        target = euler_sample(self.flow, z, batch.obs, cfg.flow_steps).clamp(-1.0, 1.0)
        actions = self.actor(z, None, batch.obs)
        distill_loss = (actions - target).pow(2).mean(dim=(-2, -1))
        q = self.critic(batch.obs, actions.clamp(-1.0, 1.0)).mean(dim=-2)  # (B,): the mean of the two critics
        q_loss = -q.mean(dim=-1)
        if cfg.normalize_q_loss:
            q_loss = q_loss / q.abs().mean(dim=-1).detach()
        actor_loss = cfg.alpha * distill_loss + q_loss
        return {"actor_loss": actor_loss, "distill_loss": distill_loss, "q_loss": q_loss, "q_policy": q.mean(dim=-1)}

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """The one-step policy: z = 0 when deterministic (evaluation, export), z ~ N(0, I) otherwise (online
        exploration, as the official sample_actions); clipped to [-1, 1]."""
        z = obs.new_zeros(*obs.shape[:-1], self.act_dim)
        if not deterministic:
            z = torch.randn_like(z)
        return self.actor(z, None, obs).clamp(-1.0, 1.0)
