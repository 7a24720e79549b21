"""EXPO, Expressive Policy Optimization (Dong et al. 2025; docs/algorithms/expo.md): online RL with offline data.

Never back-propagates Q through the diffusion chain. Three learners and one selection rule:

    base policy    DDPM eps-network eps_psi(s, a_t, t), T = 10 VP steps, trained only by imitation
                   L_base = mean_B sum_dims (eps_psi(s, a_t, t) - eps)^2 on the batch's (s, a); slow EMA copy
                   psi_bar <- 0.001 psi + 0.999 psi_bar (acting, evaluation)
    edit policy    u ~ pi_edit(.|s, a) tanh-Gaussian, a~ = a + beta u on the *stored* actions,
                   log p(a~) = log pi_edit(u|s, a) - |A| log beta,
                   L_edit = mean_B [alpha log p(a~) - mean_{j=1..K} Q_j(s, a~)]       (mean over the WHOLE ensemble)
                   L_alpha = alpha (H_est - H_target), H_est = -mean_B log p(a~), H_target = -|A|/2
    on-the-fly     a_1..a_N ~ pi_base(.|s); a~_i = a_i + beta u_i for the first n_edit samples;
    policy         a* = argmax over the 2N candidates of min_{j in M} Qbar_j(s, c), M a random subset of
                   num_min_qs TARGET critics (REDQ); base samples from the EMA net when acting, from the online
                   net inside the TD target
    critic         y = r + gamma (1 - d) min_{j in M'} Qbar_j(s', pi_OTF(s')) (a fresh subset M', no entropy term)
                   L_Q = mean over members and batch of (Q_j(s, a) - y)^2; Qbar <- 0.005 Q + 0.995 Qbar every step

With the UTD schedule (``trainer.utd``, 20 in the paper's scripts) the trainer runs ``critic_update`` on each
of G minibatches and ``policy_update`` (one base + EMA, one edit and one temperature update) on the last.
Offline pre-training (``pretrain_update``) trains the base policy only.

Framework decision: edited candidates are clipped to [-1, 1] (``clip_candidates``, docs/algorithms/expo.md) wherever
the on-the-fly policy forms them (acting, TD target), so what is executed, stored and bootstrapped is the same
action; the edit loss evaluates the unclipped a + beta u, as the official code does (clipping would cut the
gradient at the bounds).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from offrl.agents.base import Agent, AgentConfig
from offrl.core.config import (
    MAX_BATCH,
    copies,
    dropout,
    fraction,
    non_negative,
    positive,
    rate,
    width,
    widths,
)
from offrl.core.errors import ConfigError
from offrl.core.nets import EnsembleCritic, EnsembleLinear, TanhGaussianActor, frozen_copy, polyak_update
from offrl.core.optim import adam
from offrl.data.store import Batch
from offrl.diffusion import DDPMSchedule, MLPResNetDenoiser, ddpm_loss, ddpm_sample


@dataclass
class EXPOConfig(AgentConfig):
    """Defaults: the values every official script sets (docs/algorithms/expo.md#configuration)."""

    name: str = "expo"
    hidden_dims: list[int] = widths([256, 256, 256])  # critic and edit MLPs (all scripts)
    normalize_states: bool = False  # raw observations, as the official code
    # critic: ensemble of num_qs LayerNorm MLPs; REDQ min over a random subset of num_min_qs target members
    num_qs: int = copies(10)  # critics in the ensemble
    num_min_qs: int = copies(2)  # min over this many random members for targets and the argmax (AntMaze scripts: 1)
    critic_layer_norm: bool = True  # LayerNorm after each hidden layer of the critics
    critic_lr: float = positive(3e-4)  # Adam learning rate of the critics (constant)
    discount: float = fraction(0.99)  # gamma
    tau: float = rate(0.005)  # target critic Polyak rate, every critic step
    # base policy: DDPM over actions, MLP-ResNet eps-network (docs/algorithms/expo.md#the-base-policy)
    diffusion_steps: int = positive(10, most=MAX_BATCH)  # T, the DDPM steps
    beta_min: float = positive(0.1)  # b_min of the VP schedule
    beta_max: float = positive(10.0)  # b_max of the VP schedule
    clip_sampler: bool = True  # clip to [-1, 1] after every sampler step
    ddpm_temperature: float = non_negative(1.0)  # scale of the sampler's per-step noise
    base_hidden: int = width(256)  # width of the denoiser's residual trunk
    base_blocks: int = copies(3)  # residual blocks of the denoiser
    base_block_hidden: int = width(1024)  # inner width of each residual block
    time_features: int = width(128)  # learnable Fourier features (64 cos + 64 sin)
    time_hidden: int = width(256)  # width of the time-embedding MLP
    base_dropout: float = dropout(0.0)  # dropout in the denoiser's residual blocks (official: d_actor_drop)
    base_lr: float = positive(3e-4)  # AdamW learning rate of the base policy (cosine decay)
    base_weight_decay: float = non_negative(1e-4)  # AdamW decay of the base policy (optax: biases and norms too)
    ema_rate: float = rate(0.001)  # actor_tau: EMA of the base policy used for acting and evaluation
    # edit policy: tanh-Gaussian on (s, a), a~ = a + edit_scale * u
    num_samples: int = copies(8)  # N base samples per state (32 in the config file, 8 in every script)
    num_edit_samples: int = non_negative(8)  # n_edit: the first n_edit samples are edited (config file: 0, scripts: 8)
    # beta: 0.05 AntMaze / Robomimic square (online) / MimicGen; 0.1 square pre-trained; 0.7 Adroit pen
    edit_scale: float = positive(0.05)  # beta: an edit moves each action dim by at most beta
    edit_dropout: float = dropout(0.0)  # dropout in the edit policy (official actor_drop: 0.1 for Adroit pen)
    edit_lr: float = positive(3e-4)  # Adam learning rate of the edit policy (cosine decay)
    # cosine lr decay of the base and edit optimisers over this many of their own steps; None: constant lr
    decay_steps: int | None = positive(3_000_000)  # length of the base and edit lr decays; None: constant
    # temperature of the edit policy
    temp_lr: float = positive(3e-4)  # Adam learning rate of log alpha
    init_temperature: float = positive(1.0)  # alpha at the start
    target_entropy: float | None = None  # of the edit policy; None: -|A|/2 (+ |A| log beta with adjust_target_entropy)
    adjust_target_entropy: bool = False  # add |A| log beta to the default target
    # framework choices (not in the official code; docs/algorithms/expo.md#implementation-notes)
    clip_candidates: bool = True  # clip edited candidates to [-1, 1] (see the module docstring)
    # rows of a pre-training batch the base update uses (the last ones; the official code: 256 of 256 * G); None: all
    pretrain_batch_size: int | None = positive(None, most=MAX_BATCH)  # rows for the base update; None: all

    def check(self, where: str) -> None:
        """The rules that tie fields together (each field's own range is declared with it)."""
        if self.num_min_qs > self.num_qs:
            raise ConfigError(f"{where}.num_min_qs={self.num_min_qs}: expected at most {where}.num_qs={self.num_qs}")
        if self.num_edit_samples > self.num_samples:
            raise ConfigError(f"{where}.num_edit_samples={self.num_edit_samples}: expected at most "
                              f"{where}.num_samples={self.num_samples}")
        if self.time_features % 2:
            raise ConfigError(f"{where}.time_features={self.time_features}: expected an even number (cos and sin "
                              "features)")
        if self.beta_min >= self.beta_max:
            raise ConfigError(f"{where}.beta_min={self.beta_min}: expected less than {where}.beta_max={self.beta_max}")


def cosine_lr(base_lr: float, step: int, decay_steps: int | None) -> float:
    """optax.cosine_decay_schedule(base_lr, decay_steps) at optimiser step ``step`` (0 for the first update):
    base_lr * (1 + cos(pi * min(step, D) / D)) / 2, reaching 0 at D and staying there."""
    if decay_steps is None:
        return base_lr
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(step, decay_steps) / decay_steps))


def xavier_(module: nn.Module) -> nn.Module:
    """Xavier-uniform weights and zero biases on every Linear / EnsembleLinear (flax's default_init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, EnsembleLinear):
            fan_in, fan_out = m.weight.shape[1:]
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            with torch.no_grad():
                m.weight.uniform_(-bound, bound)
                m.bias.zero_()
    return module


class SharedTimeDenoiser:
    """``MLPResNetDenoiser`` for the sampler, where every row shares one step t: the time embedding
    c(t) is computed once per step and broadcast instead of once per row (the sampler evaluates the net
    T times on B * N rows; the time MLP is ~40% of a small net's cost). Same function as the net's own
    forward (tests/test_expo.py); per-row levels fall through to it. (Not in offrl/diffusion, which a
    PR may not change; a candidate for MLPResNetDenoiser itself.)"""

    def __init__(self, net: MLPResNetDenoiser) -> None:
        self.net = net

    def __call__(self, x: Tensor, noise_level: Tensor, cond: Tensor | None = None) -> Tensor:
        net = self.net
        if noise_level.dim() != 0:
            return net(x, noise_level, cond)
        emb = net.time(noise_level.reshape(1, 1)).expand(*x.shape[:-1], -1)
        parts = [x, emb] if cond is None else [x, cond.expand(*x.shape[:-1], cond.shape[-1]), emb]
        return net.out(F.silu(net.blocks(net.inp(torch.cat(parts, dim=-1)))))


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Dropout off inside the block (sampling, acting), each module's mode restored after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.train(False)
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


class EXPO(Agent):
    config_class = EXPOConfig
    needs_actions_in_bounds = True  # the base policy's DDPM clips its samples to [-1, 1]
    compiled_methods = ("iteration", "critic_step", "policy_step", "base_step")

    def __init__(self, cfg: EXPOConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.schedule = DDPMSchedule.vp(cfg.diffusion_steps, cfg.beta_min, cfg.beta_max)
        self.denoiser = MLPResNetDenoiser(act_dim, obs_dim, hidden=cfg.base_hidden, num_blocks=cfg.base_blocks,
                                          block_hidden=cfg.base_block_hidden, time_features=cfg.time_features,
                                          time_hidden=cfg.time_hidden, dropout=cfg.base_dropout)
        self.denoiser_ema = frozen_copy(self.denoiser)
        self.edit_actor = xavier_(TanhGaussianActor(obs_dim + act_dim, act_dim, cfg.hidden_dims,
                                                    dropout=cfg.edit_dropout))
        self.critic = xavier_(EnsembleCritic(obs_dim, act_dim, cfg.num_qs, cfg.hidden_dims, cfg.critic_layer_norm))
        self.critic_target = frozen_copy(self.critic)
        self.log_alpha = nn.Parameter(torch.tensor(float(cfg.init_temperature)).log())
        if cfg.target_entropy is not None:
            self.target_entropy = float(cfg.target_entropy)
        else:
            adjust = act_dim * math.log(cfg.edit_scale) if cfg.adjust_target_entropy else 0.0
            self.target_entropy = -act_dim / 2 + adjust
        self.log_edit_scale = math.log(cfg.edit_scale)
        self.optimizers = {
            "critic": adam(self.critic, cfg.critic_lr),
            # tensor lrs: the cosine schedules change them in place, outside the captured regions
            "edit": adam(self.edit_actor, torch.tensor(cfg.edit_lr)),
            "base": adam(self.denoiser, torch.tensor(cfg.base_lr), weight_decay=cfg.base_weight_decay,
                         decoupled_weight_decay=True),  # AdamW
            "alpha": adam([self.log_alpha], cfg.temp_lr),
        }
        self.pretrain_steps = 0  # base-policy steps of offline pre-training (its cosine schedule continues online)
        self.act_metrics: dict[str, Tensor] = {}  # diagnostics of the last act() call, logged with the next update

    # ------------------------------------------------------------------ the on-the-fly policy
    def target_subset(self) -> Tensor | slice:
        """A random subset of num_min_qs target members, drawn without replacement on the device."""
        cfg = self.cfg
        if cfg.num_min_qs == cfg.num_qs:
            return slice(None)
        return torch.randperm(cfg.num_qs, device=self.log_alpha.device)[: cfg.num_min_qs]

    def base_samples(self, obs: Tensor, denoiser: MLPResNetDenoiser) -> Tensor:
        """N DDPM samples per state, (B, N, A), from ``denoiser`` in one batched pass over B * N rows."""
        cfg, (B, N) = self.cfg, (obs.shape[0], self.cfg.num_samples)
        with eval_mode(denoiser):
            flat = ddpm_sample(SharedTimeDenoiser(denoiser), self.schedule, (B * N, self.act_dim),
                               cond=obs.repeat_interleave(N, 0), clip=cfg.clip_sampler,
                               temperature=cfg.ddpm_temperature)
        return flat.view(B, N, self.act_dim)

    def edit(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Edits of ``actions`` (..., A) at ``obs`` (..., obs_dim): a + beta u with u ~ pi_edit(.|s, a)
        (reparameterised) and log p(a~) = log pi_edit(u|s, a) - |A| log beta."""
        u, log_pi = self.edit_actor(torch.cat([obs, actions], dim=-1))
        return actions + self.cfg.edit_scale * u, log_pi - self.act_dim * self.log_edit_scale

    @torch.no_grad()
    def on_the_fly(self, obs: Tensor, denoiser: MLPResNetDenoiser) -> tuple[Tensor, dict[str, Tensor]]:
        """pi_OTF(s): the N base samples and the edits of the first n_edit of them, scored by the min over a
        random subset of target critics; returns the argmax candidate per state (B, A) and diagnostics."""
        cfg = self.cfg
        B, N, E, A = obs.shape[0], cfg.num_samples, cfg.num_edit_samples, self.act_dim
        base = self.base_samples(obs, denoiser)
        candidates = base
        if E > 0:
            with eval_mode(self.edit_actor):
                edited, _ = self.edit(obs.repeat_interleave(E, 0), base[:, :E].reshape(B * E, A))
            if cfg.clip_candidates:
                edited = edited.clamp(-1.0, 1.0)
            candidates = torch.cat([base, edited.view(B, E, A)], dim=1)  # (B, N + E, A)
        C = N + E
        q = self.critic_target(obs.repeat_interleave(C, 0), candidates.reshape(B * C, A), self.target_subset())
        q = q.min(dim=0).values.view(B, C)
        best = q.argmax(dim=1)
        chosen = candidates[torch.arange(B, device=obs.device), best]
        info = {"edited_win_frac": (best >= N).float().mean(), "chosen_q": q.max(dim=1).values.mean()}
        return chosen, info

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """The on-the-fly argmax with the EMA base policy, for every observation of the batch at once. It is the
        policy in both modes (official sample_actions and eval_actions are the same); ``deterministic`` only
        names the caller, the base samples stay random."""
        actions, info = self.on_the_fly(obs, self.denoiser_ema)
        self.act_metrics = {f"act_{key}": value for key, value in info.items()}
        return actions

    def host_metrics(self) -> dict[str, Tensor]:
        """The diagnostics of the last ``act`` call."""
        return self.act_metrics

    # ------------------------------------------------------------------ updates
    def pretrain_update(self, batch: Batch) -> dict[str, Tensor]:
        """Offline pre-training trains the base policy only (official scripts; docs/algorithms/expo.md#one-update)."""
        rows = self.cfg.pretrain_batch_size
        if rows is not None and rows < len(batch.obs):
            batch = batch.map(lambda x: x[-rows:])
        self.before_update()
        metrics = self.base_step(batch)
        self.pretrain_steps += 1
        return metrics

    def before_update(self) -> None:
        """The cosine decays of the base and edit policies' lrs, each by its own optimiser step count."""
        cfg = self.cfg
        base_steps = self.pretrain_steps + self.num_updates
        self.optimizers["base"].param_groups[0]["lr"].fill_(cosine_lr(cfg.base_lr, base_steps, cfg.decay_steps))
        self.optimizers["edit"].param_groups[0]["lr"].fill_(cosine_lr(cfg.edit_lr, self.num_updates, cfg.decay_steps))

    def policy_step(self, batch: Batch) -> dict[str, Tensor]:
        """One base (diffusion) update + EMA, one edit-policy update, one temperature update."""
        metrics = self.base_step(batch)
        metrics.update(self.edit_step(batch))
        metrics.update(self.temperature_step(metrics["edit_entropy"]))
        return metrics

    def critic_step(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            next_actions, info = self.on_the_fly(batch.next_obs, self.denoiser)  # online diffusion params
            next_q = self.critic_target(batch.next_obs, next_actions, self.target_subset()).min(dim=0).values
            y = batch.rewards + cfg.discount * (1.0 - batch.dones) * next_q
        q = self.critic(batch.obs, batch.actions)  # (K, B)
        critic_loss = (q - y).pow(2).mean()
        self.optimize("critic", critic_loss)
        polyak_update(self.critic_target, self.critic, cfg.tau)
        q = q.detach()
        return {"critic_loss": critic_loss.detach(), "q_data": q.mean(), "target_q": y.mean(),
                "q_ensemble_std": q.std(dim=0).mean(), "otf_edited_win_frac": info["edited_win_frac"],
                "otf_chosen_q": info["chosen_q"]}

    def base_step(self, batch: Batch) -> dict[str, Tensor]:
        loss = ddpm_loss(self.denoiser, self.schedule, batch.actions, cond=batch.obs)
        self.optimize("base", loss)
        polyak_update(self.denoiser_ema, self.denoiser, self.cfg.ema_rate)
        return {"base_loss": loss.detach()}

    def edit_step(self, batch: Batch) -> dict[str, Tensor]:
        alpha = self.log_alpha.exp().detach()
        edited, log_p = self.edit(batch.obs, batch.actions)  # stored actions: docs/algorithms/expo.md#the-edit-policy
        q = self.critic(batch.obs, edited).mean(dim=0)  # mean over the whole ensemble
        edit_loss = (alpha * log_p - q).mean()
        self.optimize("edit", edit_loss)
        return {"edit_loss": edit_loss.detach(), "edit_q": q.mean().detach(), "edit_entropy": -log_p.mean().detach(),
                "edit_magnitude": (edited - batch.actions).abs().mean().detach()}

    def temperature_step(self, entropy: Tensor) -> dict[str, Tensor]:
        alpha_loss = self.log_alpha.exp() * (entropy.detach() - self.target_entropy)
        self.optimize("alpha", alpha_loss)
        return {"alpha": self.log_alpha.exp().detach(), "alpha_loss": alpha_loss.detach()}

    # ------------------------------------------------------------------ interface parts EXPO does not have
    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        raise ConfigError("agent=expo has no policy density: its policy is an argmax over diffusion samples and "
                          "their edits (use an agent with a log_prob for policy-guided diffusion)")

    def deterministic_policy(self) -> nn.Module:
        raise ConfigError("agent=expo cannot be exported: its policy samples N diffusion actions per state and "
                          "takes an argmax over Q, so it is random even with deterministic=True")

    # ------------------------------------------------------------------ checkpoint state
    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "pretrain_steps": self.pretrain_steps}

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.pretrain_steps = state["pretrain_steps"]
