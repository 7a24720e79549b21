"""The agent interface every algorithm implements.

An agent owns its networks and optimisers and knows its update rule; it knows nothing of files,
loggers, Hydra or the environment loop. Observations reaching ``update`` and ``act`` are already
normalised by the trainer; actions live in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from offrl.data.store import Batch, TransitionStore


@dataclass
class AgentConfig:
    name: str = "?"
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    normalize_states: bool = True  # standardise states with dataset statistics (TD3+BC convention)


class Agent(nn.Module):
    config_class: ClassVar[type[AgentConfig]] = AgentConfig
    # Methods holding the tensor work of one update; ``enable_compile`` wraps them in torch.compile.
    compiled_methods: ClassVar[tuple[str, ...]] = ()
    # std of the Gaussian that ``log_prob`` puts around a deterministic actor's action (PGD's
    # det_guidance, card C.8: a unit Gaussian); an instance may set its own.
    log_prob_std: float = 1.0

    def __init__(self, cfg: AgentConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.num_updates = 0  # python-side counter (saved through get_extra_state)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One training iteration on ``batch``; returns detached scalar tensors (no host sync).
        Default: the one-minibatch case of the UTD schedule, critic_update then policy_update."""
        metrics = self.critic_update(batch)
        metrics.update(self.policy_update(batch))
        return metrics

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions in [-1, 1] for a batch of (normalised) observations."""
        raise NotImplementedError

    # The UTD schedule (trainer.utd > 1, RLPD/EXPO) sequences these two parts of an update: the critic
    # part on each of utd minibatches, the policy part (actor, temperature, ...) once. Agents that can
    # be split so override both; ``update`` stays the one-minibatch case.
    def critic_update(self, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def policy_update(self, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def supports_utd(self) -> bool:
        cls = type(self)
        return cls.critic_update is not Agent.critic_update and cls.policy_update is not Agent.policy_update

    def pretrain_update(self, batch: Batch) -> dict[str, Tensor]:
        """The update of offline pre-training before an online phase (trainer=offline_to_online).
        Default: the ordinary update; an agent that pre-trains only some networks overrides it."""
        return self.update(batch)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) for a batch of (normalised) observations and actions, shape (B,), differentiable
        in ``actions`` (policy-guided diffusion steers sampled actions along its gradient). Default, for
        deterministic actors: the density of N(act(obs), log_prob_std^2 I), whose gradient in the actions
        is (act(obs) - a) / std^2. Stochastic agents override this with their policy's own density."""
        mean = self.act(obs, deterministic=True)
        std = self.log_prob_std
        return (-0.5 * ((actions - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def deterministic_policy(self) -> nn.Module:
        """The deterministic policy as a module of its own, for export (``offrl export`` traces it):
        forward(obs) maps a batch of normalised observations (B, obs_dim) to the actions in [-1, 1] of
        ``act(obs, deterministic=True)``, sharing this agent's parameters. Default: a module calling
        ``act``, traceable when ``act`` is tensor operations whose Python control flow depends on the
        config only (not on the data or the batch size); an agent whose ``act`` is not overrides this."""
        return _DeterministicAct(self)

    def attach_dataset(self, store: TransitionStore) -> None:
        """Called once before training with the (normalised) offline data, for agents whose update
        needs the whole dataset (e.g. PRDC's nearest-neighbour search). Default: nothing."""

    def optimize(self, name: str, loss: Tensor, inputs: list[Tensor] | None = None) -> None:
        """One step of optimiser ``name`` on ``loss``; with ``inputs``, gradients reach only those tensors."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=inputs)
        opt.step()

    def enable_compile(self, **options: Any) -> None:
        for name in self.compiled_methods:
            setattr(self, name, torch.compile(getattr(self, name), **options))

    def get_extra_state(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.num_updates = state["num_updates"]

    def optimizer_state(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


class _DeterministicAct(nn.Module):
    """``agent.act(obs, deterministic=True)`` as a module (Agent.deterministic_policy's default)."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, obs: Tensor) -> Tensor:
        return self.agent.act(obs, deterministic=True)


def adam(module: nn.Module, lr: float, **kwargs: Any) -> torch.optim.Adam:
    """Adam with the fused kernel (one kernel for all parameters, on CPU and CUDA)."""
    return torch.optim.Adam(module.parameters(), lr=lr, fused=True, **kwargs)
