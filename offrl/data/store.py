"""TransitionStore: transitions as preallocated tensors on one device.

The same class is the offline dataset (built full from ``OfflineData``) and the online replay buffer
(``add`` with a ring index and a capacity). Sampling draws indices with ``torch.randint`` on the
store's device, so a batch never leaves the device. ``EpisodeWriter`` writes a vector env's transitions
into a replay (whole episodes, with their returns-to-go, where the replay holds them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from offrl.data.arrays import OfflineData, episode_bounds, returns_to_go


def _returns(data: OfflineData, discount: float | None) -> np.ndarray:
    if discount is None:
        raise ValueError("the 'returns' column is made at the discount of the agent that reads it; none was given")
    return data.returns_to_go(discount)


# Batch columns beyond the transition, each made from the offline data for the agents that read it
# (Agent.dataset_columns), at the agent's discount where it needs one: name -> the column, one value per row.
COLUMNS: dict[str, Callable[[OfflineData, float | None], np.ndarray]] = {
    "next_actions": lambda data, discount: data.next_actions(),
    "returns": _returns,
}
# The columns an online replay holds too (EpisodeWriter adds each episode whole, with them, when it ends); the
# others exist only for dataset rows.
REPLAY_COLUMNS = ("returns",)


class Batch(NamedTuple):
    obs: Tensor  # (B, obs_dim)
    actions: Tensor  # (B, act_dim)
    rewards: Tensor  # (B,)
    next_obs: Tensor  # (B, obs_dim)
    dones: Tensor  # (B,) 1.0 where the episode terminated (not at a time limit)
    # what the policy is trained on where it differs from ``obs``: goal relabelling can give the policy
    # other goals than the transition's (OGBench's GCIQL); None: ``obs``
    policy_obs: Tensor | None = None
    # (B, act_dim) the dataset's action at ``next_obs`` (OfflineData.next_actions), a column of COLUMNS: present
    # where the agent reads it (Agent.dataset_columns) and the store holds it, else None
    next_actions: Tensor | None = None
    # (B,) each row's discounted return-to-go (OfflineData.returns_to_go; online rows: their episode's, EpisodeWriter),
    # a column of COLUMNS: present where the agent reads it and the store holds it, else None
    returns: Tensor | None = None

    @property
    def actor_obs(self) -> Tensor:
        """The observations of the policy's loss: ``policy_obs`` where the batch has them, else ``obs``."""
        return self.obs if self.policy_obs is None else self.policy_obs

    def map(self, fn: Callable[[Tensor], Tensor]) -> Batch:
        """``fn`` applied to every field (rows picked, split, moved); a field that is None stays None."""
        return Batch(*(None if field is None else fn(field) for field in self))


def combine(batches: Sequence[Batch], fn: Callable[[list[Tensor]], Tensor]) -> Batch:
    """One batch from several, ``fn`` (cat, stack) applied field by field. ``policy_obs`` stays None unless
    some batch has it; then the others give their ``obs``. A column of COLUMNS is kept where every batch has it."""
    fields = [fn(list(values)) for values in zip(*(b[:5] for b in batches))]
    policy_obs = None if all(b.policy_obs is None for b in batches) else fn([b.actor_obs for b in batches])
    columns = {name: fn([getattr(b, name) for b in batches]) for name in COLUMNS
               if all(getattr(b, name) is not None for b in batches)}
    return Batch(*fields, policy_obs, **columns)


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
        self.columns: dict[str, Tensor] = {}  # the columns of COLUMNS this store holds, by name (made by its first add)
        self.returns_discount: float | None = None  # the discount of its 'returns' column, where it holds one
        self.size = 0  # number of valid rows
        self.position = 0  # next row to write
        self.wrapped = False  # True once the ring has overwritten old rows
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    @classmethod
    def from_data(cls, data: OfflineData, device: str | torch.device = "cpu", seed: int = 0,
                  columns: Sequence[str] = (), discount: float | None = None) -> TransitionStore:
        """The dataset as a store, holding the ``columns`` (names of COLUMNS) its agent reads besides, made at the
        agent's ``discount`` (the returns-to-go; a DatasetError where the data has no episode ends for them)."""
        store = cls(data.obs_dim, data.act_dim, len(data), device, seed)
        store.add(data.observations, data.actions, data.rewards, data.next_observations, data.terminals,
                  data.episode_ends, **{name: COLUMNS[name](data, discount) for name in columns})
        store.returns_discount = discount if "returns" in columns else None
        return store

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated, episode_ends, **columns) -> None:
        """Append a block of k transitions (numpy arrays or tensors, leading dim k), overwriting the
        oldest rows once the store is full; ``columns``: the k rows' values of columns of COLUMNS, the same
        names at every add (the first one makes them)."""
        if self.size and set(columns) != set(self.columns):
            raise ValueError(f"this store holds the columns {sorted(self.columns)}, not {sorted(columns)}")
        values = [torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v) for v in
                  (obs, actions, rewards, next_obs, terminated, episode_ends, *columns.values())]
        k = values[0].shape[0]
        if k > self.capacity:
            raise ValueError(f"cannot add {k} transitions to a store of capacity {self.capacity}")
        for name, value in zip(columns, values[len(self.FIELDS):]):
            if name not in self.columns:
                self.columns[name] = torch.zeros(self.capacity, *value.shape[1:], dtype=value.dtype, device=self.device)
        rows = (torch.arange(k) + self.position) % self.capacity
        rows = rows.to(self.device)
        targets = [getattr(self, name) for name in self.FIELDS] + [self.columns[name] for name in columns]
        for target, value in zip(targets, values):
            target[rows] = value.to(device=self.device, dtype=target.dtype).reshape(k, *target.shape[1:])
        self.wrapped = self.wrapped or self.position + k > self.capacity
        self.position = (self.position + k) % self.capacity
        self.size = min(self.size + k, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        index = torch.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator)
        return self.rows(index)

    def rows(self, index: Tensor | slice) -> Batch:
        """The rows ``index`` (any shape of indices, or a slice) as a batch, with the columns this store holds."""
        return Batch(self.obs[index], self.actions[index], self.rewards[index], self.next_obs[index],
                     self.dones[index], **self.columns_at(index))

    def columns_at(self, index: Tensor | slice) -> dict[str, Tensor]:
        """The columns this store holds at rows ``index``, as Batch keyword arguments."""
        return {name: column[index] for name, column in self.columns.items()}

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
        return self.rows(slice(int(start), int(stop)))

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
                     generator=self.generator.get_state(),
                     columns={name: column[: self.size].cpu() for name, column in self.columns.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.FIELDS:
            getattr(self, name)[: state["size"]] = state[name].to(self.device)
        for name, value in state.get("columns", {}).items():  # checkpoints from before columns have none
            self.columns[name] = torch.zeros(self.capacity, *value.shape[1:], dtype=value.dtype, device=self.device)
            self.columns[name][: state["size"]] = value.to(self.device)
        self.size, self.position, self.wrapped = state["size"], state["position"], state["wrapped"]
        self.generator.set_state(state["generator"])


class EpisodeWriter:
    """Writes the transitions of a vector env's sub-envs into ``store`` (an online replay). Without a
    ``returns_discount`` each transition goes in at once. With one (the replay of an agent that reads returns-to-go,
    at its discount), each sub-env's episode is held until it ends and then added whole, with each row's discounted
    return-to-go (``returns_to_go``, the rule of the dataset's rows: an episode cut by the env's time limit gets its
    truncated return), so no row is sampled before its return is known, as Cal-QL's official code adds each online
    trajectory when it is complete. Until a first episode ends such a replay has no rows (a ``Mixture`` gives their
    share of each batch to the dataset); the rows of an episode still running when training stops are never added."""

    def __init__(self, store: TransitionStore, num_envs: int, returns_discount: float | None = None) -> None:
        self.store, self.returns_discount = store, returns_discount
        self.pending: list[list[tuple[Tensor, ...]]] = [[] for _ in range(num_envs)]  # per sub-env: rows held

    def add(self, envs: np.ndarray, obs, actions, rewards, next_obs, terminated, ended) -> None:
        """One vector-env step: row i of each column is the transition of sub-env ``envs[i]``; ``ended``: its
        episode ended there (terminated or truncated)."""
        if self.returns_discount is None:
            self.store.add(obs, actions, rewards, next_obs, terminated, ended)
            return
        columns = [torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v).to(self.store.device)
                   for v in (obs, actions, rewards, next_obs, terminated, ended)]
        for i, k in enumerate(envs):
            self.pending[k].append(tuple(column[i] for column in columns))
            if bool(ended[i]):
                self._add_episode(k)

    def _add_episode(self, k: int) -> None:
        obs, actions, rewards, next_obs, terminated, ended = (torch.stack(c) for c in zip(*self.pending[k]))
        returns = returns_to_go(rewards.cpu().numpy(), terminated.cpu().numpy(), ended.cpu().numpy(),
                                self.returns_discount)
        self.store.add(obs, actions, rewards, next_obs, terminated, ended, returns=returns)
        self.pending[k] = []

    def state_dict(self) -> dict[str, Any]:
        """The rows held for each sub-env's running episode."""
        return {"pending": [[torch.stack(c).cpu() for c in zip(*rows)] if rows else None for rows in self.pending]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending = [[] if columns is None else list(zip(*(c.to(self.store.device) for c in columns)))
                        for columns in state["pending"]]
