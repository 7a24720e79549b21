"""A2PR (Liu et al., ICML 2024; docs/algorithms/a2pr.md): TD3+BC whose BC target is chosen per sample by advantage.

One iteration (batch B, normalised states):
  (1) critic: the TD3 step (docs/algorithms/td3bc.md#the-td3-backbone), y = r + gamma (1 - d) min_j Q_target_j(s', a')
  (2) value:  y_V = min(y, r + gamma (1 - d) min_j Q_j(s', a')) with the *updated* critic;
              L_V = MSE(V(s), y_V)                              (v = V(s) before this step is kept)
  (3) VAE:    L = mean(w_vae 1[Q_1(s, a) > v] (a^ - a)^2) + 0.5 KL,   (a^, mu, sigma) = VAE(s, a)
  (4) actor, every policy_freq iterations:
      a^_pi = VAE(s, pi(s)) reconstruction;  A_pi = Q_1(s, a^_pi) - v,  A_a = Q_1(s, a) - v
      target = a^_pi where A_pi >= A_a else a
      m = mask (1[Q_1(s, a^_pi) >= v] + 1[Q_1(s, a) > v])
      L_actor = -lambda mean Q_1(s, pi) + mean(m (pi - target)^2),  lambda = alpha / sg(mean |Q_1|)
The official code does not detach ``target`` (gradients reach pi through the VAE); ``detach_target``
switches to the clean regression variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from offrl.agents.td3bc import TD3BC, TD3BCConfig
from offrl.core.config import non_negative, positive, widths
from offrl.core.nets import VAE, mlp, polyak_update
from offrl.core.optim import adam
from offrl.data.store import Batch


@dataclass
class A2PRConfig(TD3BCConfig):
    name: str = "a2pr"
    hidden_dims: list[int] = widths([256, 256, 256])  # actor
    critic_hidden_dims: list[int] | None = widths([256, 256, 256, 256])  # critics, V
    vae_hidden_dims: list[int] = widths([750, 750])  # VAE encoder and decoder
    value_lr: float = positive(3e-4)  # Adam learning rate of V
    vae_lr: float = positive(1e-3)  # Adam learning rate of the VAE (PyTorch's default, as in the official code)
    mask: float = non_negative(0.5)  # weight of each satisfied advantage indicator in the BC term
    vae_weight: float = non_negative(1.0)  # weight of the VAE reconstruction of positive-advantage actions
    kl_weight: float = non_negative(0.5)  # weight of the VAE's KL term (fixed in the official code)
    detach_target: bool = False  # True: stop gradients through the VAE-chosen BC target (not the paper code)


def advantage_target(q_vae: Tensor, q_data: Tensor, v: Tensor, vae_action: Tensor, data_action: Tensor,
                     mask: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per sample: the BC target (the VAE action where its advantage is at least the dataset action's),
    the BC weight mask * (1[A_vae >= 0] + 1[A_data > 0]), and which samples use the VAE action."""
    use_vae = (q_vae - v >= q_data - v).detach()
    target = torch.where(use_vae[..., None], vae_action, data_action)
    weight = mask * ((q_vae >= v).float() + (q_data > v).float()).detach()
    return target, weight, use_vae


class A2PR(TD3BC):
    config_class = A2PRConfig

    def __init__(self, cfg: A2PRConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)  # the actor, the critics (critic_hidden_dims) and their targets
        self.value = mlp(obs_dim, 1, self.critic_hidden_dims)
        self.latent_dim = 2 * act_dim
        self.vae = VAE(obs_dim, act_dim, latent_dim=self.latent_dim, hidden=cfg.vae_hidden_dims)
        self.optimizers.update(value=adam(self.value, cfg.value_lr), vae=adam(self.vae, cfg.vae_lr))

    def prepare(self, batch: Batch) -> dict[str, Tensor]:
        """TD3+BC's inputs and the VAE's latent draws (its own step, and the actor step's VAE(s, pi(s)))."""
        return {**super().prepare(batch), "vae": self.noise_like(batch.actions, self.latent_dim),
                "vae_policy": self.noise_like(batch.actions, self.latent_dim)}

    def iteration(self, batch: Batch, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        next_actions, y = self.td_target(batch, inputs["smoothing"])
        metrics = self.q_step(batch, y)
        v = self.value(batch.obs).squeeze(-1)
        metrics.update(self.value_step(batch, next_actions, y, v))
        metrics.update(self.vae_step(batch, v.detach(), inputs["vae"]))
        if "bc_target" in inputs:  # the dataset actions, one of the two candidate targets
            metrics.update(self.advantage_actor_step(batch, v.detach(), inputs["bc_target"], inputs["vae_policy"]))
        return metrics

    def value_step(self, batch: Batch, next_actions: Tensor, y: Tensor, v: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():  # the online critic, just updated
            y_online = batch.rewards + self.cfg.discount * (1.0 - batch.dones) * self.critic(
                batch.next_obs, next_actions).min(dim=-2).values
        value_loss = (v - torch.minimum(y, y_online)).pow(2).mean(dim=-1)
        self.optimize("value", value_loss)
        return {"value_loss": value_loss.detach(), "v": v.mean(dim=-1).detach()}

    def vae_step(self, batch: Batch, v: Tensor, noise: Tensor | None = None) -> dict[str, Tensor]:
        with torch.no_grad():
            good = (self.critic(batch.obs, batch.actions, members=slice(0, 1))[..., 0, :] > v).float()
        recon, mean, std = self.vae(batch.obs, batch.actions, noise)
        recon_loss = (self.cfg.vae_weight * good[..., None] * (recon - batch.actions) ** 2).mean(dim=(-2, -1))
        kl = -0.5 * (1 + torch.log(std.pow(2)) - mean.pow(2) - std.pow(2)).mean(dim=(-2, -1))
        vae_loss = recon_loss + self.cfg.kl_weight * kl
        self.optimize("vae", vae_loss)
        return {"vae_loss": vae_loss.detach(), "vae_positive_fraction": good.mean(dim=-1)}

    def advantage_actor_step(self, batch: Batch, v: Tensor, data_actions: Tensor,
                             noise: Tensor | None = None) -> dict[str, Tensor]:
        cfg = self.cfg
        pi = self.actor(batch.obs)
        q1 = self.critic(batch.obs, pi, members=slice(0, 1))[..., 0, :]
        lmbda = cfg.alpha / q1.abs().mean(dim=-1).detach()
        vae_action = self.vae(batch.obs, pi, noise)[0]
        q_vae = self.critic(batch.obs, vae_action, members=slice(0, 1))[..., 0, :]
        with torch.no_grad():
            q_data = self.critic(batch.obs, data_actions, members=slice(0, 1))[..., 0, :]
        target, weight, use_vae = advantage_target(q_vae, q_data, v, vae_action, data_actions, cfg.mask)
        if cfg.detach_target:
            target = target.detach()
        bc_loss = (weight[..., None] * (pi - target) ** 2).mean(dim=(-2, -1))
        actor_loss = -lmbda * q1.mean(dim=-1) + bc_loss
        self.optimize("actor", actor_loss)
        polyak_update(self.critic_target, self.critic, cfg.tau)
        polyak_update(self.actor_target, self.actor, cfg.tau)
        chosen_advantage = torch.where(use_vae, q_vae, q_data) - v
        return {"actor_loss": actor_loss.detach(), "bc_loss": bc_loss.detach(), "lambda": lmbda,
                "vae_target_fraction": use_vae.float().mean(dim=-1),
                "chosen_advantage": chosen_advantage.mean(dim=-1).detach(), "bc_weight": weight.mean(dim=-1)}
