"""TransitionStore: transitions as preallocated tensors on one device.

The same class is the offline dataset (built full from ``OfflineData``) and the online replay buffer
(``add`` with a ring index and a capacity). Sampling draws indices with ``torch.randint`` on the
store's device, so a batch never leaves the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from offrl.data.arrays import OfflineData, episode_bounds


class Batch(NamedTuple):
    obs: Tensor  # (B, obs_dim)
    actions: Tensor  # (B, act_dim)
    rewards: Tensor  # (B,)
    next_obs: Tensor  # (B, obs_dim)
    dones: Tensor  # (B,) 1.0 where the episode terminated (not at a time limit)
    # what the policy is trained on where it differs from ``obs``: goal relabelling can give the policy
    # other goals than the transition's (OGBench's GCIQL); None: ``obs``
    policy_obs: Tensor | None = None

    @property
    def actor_obs(self) -> Tensor:
        """The observations of the policy's loss: ``policy_obs`` where the batch has them, else ``obs``."""
        return self.obs if self.policy_obs is None else self.policy_obs

    def map(self, fn: Callable[[Tensor], Tensor]) -> Batch:
        """``fn`` applied to every field (rows picked, split, moved) with ``policy_obs`` kept None if it is."""
        return Batch(*(None if field is None else fn(field) for field in self))


def combine(batches: Sequence[Batch], fn: Callable[[list[Tensor]], Tensor]) -> Batch:
    """One batch from several, ``fn`` (cat, stack) applied field by field. ``policy_obs`` stays None unless
    some batch has it; then the others give their ``obs``."""
    fields = [fn(list(values)) for values in zip(*(b[:5] for b in batches))]
    if all(b.policy_obs is None for b in batches):
        return Batch(*fields)
    return Batch(*fields, fn([b.actor_obs for b in batches]))


class ObsNormalizer(nn.Module):
    """Per-dimension state standardisation (s - mu) / (sigma + eps), saved with the agent's checkpoint."""

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    @classmethod
    def fit(cls, observations: np.ndarray, eps: float = 1e-3) -> ObsNormalizer:
        normalizer = cls(observations.shape[1])
        normalizer.mean.copy_(torch.from_numpy(observations.mean(0, dtype=np.float64)).float())
        normalizer.std.copy_(torch.from_numpy(observations.std(0, dtype=np.float64) + eps).float())
        return normalizer

    def forward(self, obs: Tensor) -> Tensor:
        return (obs - self.mean) / self.std


class TransitionStore:
    FIELDS = ("obs", "actions", "rewards", "next_obs", "dones", "episode_ends")

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, device: str | torch.device = "cpu", seed: int = 0):
        self.device = torch.device(device)
        self.capacity = int(capacity)
        self.obs = torch.zeros(capacity, obs_dim, device=self.device)
        self.actions = torch.zeros(capacity, act_dim, device=self.device)
        self.rewards = torch.zeros(capacity, device=self.device)
        self.next_obs = torch.zeros(capacity, obs_dim, device=self.device)
        self.dones = torch.zeros(capacity, device=self.device)
        self.episode_ends = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.size = 0  # number of valid rows
        self.position = 0  # next row to write
        self.wrapped = False  # True once the ring has overwritten old rows
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    @classmethod
    def from_data(cls, data: OfflineData, device: str | torch.device = "cpu", seed: int = 0) -> TransitionStore:
        store = cls(data.obs_dim, data.act_dim, len(data), device, seed)
        store.add(
            data.observations, data.actions, data.rewards, data.next_observations, data.terminals, data.episode_ends
        )
        return store

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated, episode_ends) -> None:
        """Append a block of k transitions (numpy arrays or tensors, leading dim k), overwriting the
        oldest rows once the store is full."""
        values = [torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v) for v in
                  (obs, actions, rewards, next_obs, terminated, episode_ends)]
        k = values[0].shape[0]
        if k > self.capacity:
            raise ValueError(f"cannot add {k} transitions to a store of capacity {self.capacity}")
        rows = (torch.arange(k) + self.position) % self.capacity
        rows = rows.to(self.device)
        for name, value in zip(self.FIELDS, values):
            target = getattr(self, name)
            target[rows] = value.to(device=self.device, dtype=target.dtype).reshape(k, *target.shape[1:])
        self.wrapped = self.wrapped or self.position + k > self.capacity
        self.position = (self.position + k) % self.capacity
        self.size = min(self.size + k, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        index = torch.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator)
        return Batch(self.obs[index], self.actions[index], self.rewards[index], self.next_obs[index], self.dones[index])

    def episode_bounds(self) -> np.ndarray:
        """[start, stop) rows of each stored episode (for trajectory models, returns, analysis).

        Defined for stores whose episodes were written contiguously and never overwritten, i.e.
        offline datasets; an online ring buffer interleaves vector-env episodes.
        """
        if self.wrapped:
            raise RuntimeError("episode_bounds() is undefined once the ring buffer has overwritten rows")
        return episode_bounds(self.episode_ends[: self.size].cpu().numpy())

    def episode(self, index: int) -> Batch:
        start, stop = self.episode_bounds()[index]
        rows = slice(int(start), int(stop))
        return Batch(self.obs[rows], self.actions[rows], self.rewards[rows], self.next_obs[rows], self.dones[rows])

    def normalize_obs(self, normalizer: ObsNormalizer) -> None:
        """Standardise stored states in place (TD3+BC convention: once, at load time)."""
        normalizer = normalizer.to(self.device)
        with torch.no_grad():
            self.obs[: self.size] = normalizer(self.obs[: self.size])
            self.next_obs[: self.size] = normalizer(self.next_obs[: self.size])

    def state_dict(self) -> dict[str, Any]:
        """Filled rows, ring position and sampling RNG: what an online run needs to resume."""
        state: dict[str, Any] = {name: getattr(self, name)[: self.size].cpu() for name in self.FIELDS}
        state.update(size=self.size, position=self.position, wrapped=self.wrapped,
                     generator=self.generator.get_state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.FIELDS:
            getattr(self, name)[: state["size"]] = state[name].to(self.device)
        self.size, self.position, self.wrapped = state["size"], state["position"], state["wrapped"]
        self.generator.set_state(state["generator"])
