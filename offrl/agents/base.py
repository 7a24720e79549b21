"""The agent interface every algorithm implements.

An agent owns its networks and optimisers and knows its update rule; it knows nothing of files,
loggers, Hydra or the environment loop. Observations reaching ``update`` and ``act`` are already
normalised by the trainer; actions live in [-1, 1].
"""

from __future__ import annotations

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

    def __init__(self, cfg: AgentConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.num_updates = 0  # python-side counter (saved through get_extra_state)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One training iteration on ``batch``; returns detached scalar tensors (no host sync)."""
        raise NotImplementedError

    def act(self, obs: Tensor, deterministic: bool = True) -> Tensor:
        """Actions in [-1, 1] for a batch of (normalised) observations."""
        raise NotImplementedError

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


def adam(module: nn.Module, lr: float, **kwargs: Any) -> torch.optim.Adam:
    """Adam with the fused kernel (one kernel for all parameters, on CPU and CUDA)."""
    return torch.optim.Adam(module.parameters(), lr=lr, fused=True, **kwargs)
