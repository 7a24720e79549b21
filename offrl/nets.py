"""Network building blocks shared by every agent."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def mlp(
    in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256), activation: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """in -> hidden... -> out with ``activation`` between layers and no output activation."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers evaluated as one batched matmul: (n, B, in) -> (n, B, out).

    Each member is initialised like ``nn.Linear`` (uniform in +-1/sqrt(in)).
    """

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleCritic(nn.Module):
    """``n`` Q-functions Q_j(s, a) as one module with a leading ensemble dimension: returns (n, B).

    ``members`` evaluates a contiguous subset only (e.g. ``slice(0, 1)`` for TD3's Q1 in the actor
    loss) without computing the others.
    """

    def __init__(self, obs_dim: int, act_dim: int, n: int = 2, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.n = n
        dims = [obs_dim + act_dim, *hidden, 1]
        self.layers = nn.ModuleList(EnsembleLinear(n, i, o) for i, o in zip(dims[:-1], dims[1:]))

    def forward(self, obs: Tensor, actions: Tensor, members: slice = slice(None)) -> Tensor:
        x = torch.cat([obs, actions], dim=-1)
        n = len(range(self.n)[members])
        if x.dim() == 2:  # the same batch for every member
            x = x.unsqueeze(0).expand(n, *x.shape)
        for i, layer in enumerate(self.layers):
            x = torch.baddbmm(layer.bias[members], x, layer.weight[members])
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x.squeeze(-1)


class DeterministicActor(nn.Module):
    """pi(s) = tanh(MLP(s)), actions in [-1, 1]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a deep copy with gradients off."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target, as one fused foreach op."""
    torch._foreach_lerp_(_tensors(target), _tensors(source), tau)


def _tensors(module: nn.Module) -> list[Tensor]:
    return [p.data for p in module.parameters()]
