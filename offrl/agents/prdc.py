"""PRDC (Ran et al., ICML 2023; docs/algorithms/prdc.md): TD3+BC whose BC target is the action of the dataset
transition nearest to (beta * s, pi(s)) in the joint state-action space.

    X       = { (beta * s_i, a_i) }  over all dataset transitions (normalised states), built once
    (s^, a^) = argmin_{(beta s_i, a_i) in X} || (beta s, pi(s)) - (beta s_i, a_i) ||
    L_actor = -lambda mean Q_1(s, pi(s)) + MSE(pi(s), sg(a^)),   lambda = alpha / sg(mean |Q_1|)

Exact search: a KD-tree on CPU, a brute-force float64 search on the GPU (offrl/core/neighbors.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from offrl.agents.td3bc import TD3BC, TD3BCConfig
from offrl.core.config import non_negative, one_of
from offrl.core.neighbors import BACKENDS, NearestNeighbors
from offrl.data.store import Batch, TransitionStore


@dataclass
class PRDCConfig(TD3BCConfig):
    name: str = "prdc"
    beta: float = non_negative(2.0)  # weight of the state part of the distance (README value for Gym-MuJoCo)
    neighbor_backend: str = one_of(*BACKENDS)  # auto (KD-tree on CPU, brute force on GPU) | kdtree | torch


class PRDC(TD3BC):
    config_class = PRDCConfig

    def __init__(self, cfg: PRDCConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.last_search: dict[str, Tensor] = {}  # diagnostics of this update's search (none without an actor step)

    def attach_dataset(self, store: TransitionStore) -> None:
        n = len(store)
        self.search_actions = store.actions[:n]
        self.search = NearestNeighbors(torch.cat([self.cfg.beta * store.obs[:n], self.search_actions], dim=1),
                                       self.cfg.neighbor_backend)

    def prepare(self, batch: Batch) -> dict[str, Tensor]:
        """TD3+BC's inputs, the BC target from the nearest-neighbour search (its diagnostics: ``host_metrics``)."""
        self.last_search = {}
        return super().prepare(batch)

    def bc_target(self, batch: Batch) -> Tensor:
        """Computed before this iteration's critic step, which does not change pi."""
        with torch.no_grad():
            return self.nearest_action(batch, self.actor(batch.obs))

    def nearest_action(self, batch: Batch, pi: Tensor) -> Tensor:
        """a^: the action of the dataset transition nearest to (beta s, pi(s)) (exact search, on the host
        for the KD-tree)."""
        key = torch.cat([self.cfg.beta * batch.obs, pi], dim=-1)
        index = self.search.query(key.reshape(-1, key.shape[-1])).reshape(key.shape[:-1])  # all seeds at once
        target = self.search_actions[index]
        self.last_search = {"neighbor_distance": (key - self.search.points[index]).norm(dim=-1).mean(dim=-1),
                            "neighbor_action_gap": (batch.actions - target).norm(dim=-1).mean(dim=-1)}
        return target

    def host_metrics(self) -> dict[str, Tensor]:
        return self.last_search
