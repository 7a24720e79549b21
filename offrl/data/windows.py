"""Fixed-length sub-trajectories of a TransitionStore for PGD (docs/algorithms/pgd.md#trajectory-windows).

A window is ``horizon`` consecutive rows of one episode. Which windows exist (as PGD's
``environments/dataset.py``):

* per episode, starts at offsets 0, stride, 2 stride, ... (so every episode start is one);
* plus, for an episode that ends in a terminal, the window that ends exactly on that terminal step;
* a window never crosses an episode boundary, so a ``done`` that ends an episode can only be at its last
  step; a terminal inside an episode (a task solved while the episode goes on, as in OGBench's single-task
  data) is no boundary: windows run through it, with ``done`` = 1 at that step;
* a window whose last step is a non-terminal episode end (a time limit, or the end of the data) is
  excluded, as is any window that would run past the episode's end; episodes shorter than the horizon
  give no window.

(PGD takes every stride-th valid start of the concatenated episodes; here the stride counts from each
episode's start, which keeps the set independent of the episode order.)

Channels per step: observation dims, pre-tanh action dims atanh(clip(a, -(1 - eps), 1 - eps)) with
eps = 1e-3 (PGD's 0.999), reward, done (1 = terminal). Every channel is standardised with its own
mean/std over the training windows' rows (rows counted once per window that holds them, as PGD computes
them over its window tensor); a std of 0 becomes 1. Held-out validation episodes (a seeded choice of
``val_fraction`` of the episodes) give windows the same way, normalised with the training statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from offrl.core.errors import DatasetError
from offrl.data.store import Batch, TransitionStore

ACTION_EPS = 1e-3  # actions are clipped to +-(1 - eps) before atanh (PGD: 0.999)


class TrajectoryNormalizer:
    """Per-channel (x - mean) / std of windows laid out as [obs | pre-tanh action | reward | done]."""

    def __init__(self, obs_dim: int, act_dim: int, mean: Tensor, std: Tensor, action_eps: float = ACTION_EPS) -> None:
        self.obs_dim, self.act_dim, self.action_eps = int(obs_dim), int(act_dim), float(action_eps)
        self.mean, self.std = mean.float(), std.float()

    @property
    def channels(self) -> int:
        return self.obs_dim + self.act_dim + 2

    def to(self, device: str | torch.device) -> TrajectoryNormalizer:
        return TrajectoryNormalizer(self.obs_dim, self.act_dim, self.mean.to(device), self.std.to(device),
                                    self.action_eps)

    def state_dict(self) -> dict[str, Any]:
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "mean": self.mean.cpu(), "std": self.std.cpu(),
                "action_eps": self.action_eps}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TrajectoryNormalizer:
        return cls(state["obs_dim"], state["act_dim"], state["mean"], state["std"], state["action_eps"])

    # ------------------------------------------------------------------ channel slices
    @property
    def obs_slice(self) -> slice:
        return slice(0, self.obs_dim)

    @property
    def action_slice(self) -> slice:
        return slice(self.obs_dim, self.obs_dim + self.act_dim)

    def action_mask(self) -> Tensor:
        """(channels,) ones on the action channels: the guidance mask."""
        mask = torch.zeros(self.channels, device=self.mean.device)
        mask[self.action_slice] = 1.0
        return mask

    # ------------------------------------------------------------------ raw <-> normalised
    def raw_channels(self, obs: Tensor, actions: Tensor, rewards: Tensor, dones: Tensor) -> Tensor:
        """Unnormalised channels (..., C) of transitions; actions in [-1, 1] become atanh of the clipped value."""
        bound = 1.0 - self.action_eps
        pre = torch.atanh(actions.clamp(-bound, bound))
        return torch.cat([obs, pre, rewards[..., None], dones[..., None].to(obs.dtype)], dim=-1)

    def normalize(self, raw: Tensor) -> Tensor:
        return (raw - self.mean) / self.std

    def unnormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean

    def observations(self, x: Tensor) -> Tensor:
        """Real-scale observations of normalised windows (differentiable)."""
        s = self.obs_slice
        return x[..., s] * self.std[s] + self.mean[s]

    def actions(self, x: Tensor) -> Tensor:
        """Actions in [-1, 1] of normalised windows: tanh(unnormalised pre-tanh channels) (differentiable)."""
        s = self.action_slice
        return torch.tanh(x[..., s] * self.std[s] + self.mean[s])

    def decode(self, windows: Tensor) -> Batch:
        """Normalised windows (B, L, C) as B (L - 1) flat transitions (docs/algorithms/pgd.md#guided-sampling):
        s_t, a_t = tanh(pre-tanh a_t), r_t, s_{t+1} = the next step's observation, done_t = 1[done_t > 0.5]
        (unnormalised), for t = 0..L-2; window b's transitions are rows b (L - 1) .. (b + 1)(L - 1) - 1."""
        if windows.dim() != 3 or windows.shape[-1] != self.channels or windows.shape[1] < 2:
            raise ValueError(f"windows of shape {tuple(windows.shape)}: expected (B, L >= 2, {self.channels})")
        raw = self.unnormalize(windows)
        od, ad = self.obs_dim, self.act_dim
        flat = lambda v: v.reshape(-1, *v.shape[2:])  # noqa: E731
        obs = flat(raw[:, :-1, :od])
        next_obs = flat(raw[:, 1:, :od])
        actions = flat(torch.tanh(raw[:, :-1, od:od + ad]))
        rewards = flat(raw[:, :-1, od + ad])
        dones = flat((raw[:, :-1, od + ad + 1] > 0.5).to(raw.dtype))
        return Batch(obs, actions, rewards, next_obs, dones)


def valid_window_starts(bounds: np.ndarray, terminal_end: np.ndarray, horizon: int, stride: int) -> np.ndarray:
    """Sorted start rows of the windows of episodes [start, stop) (``bounds`` (E, 2)); ``terminal_end[e]``:
    episode e ends in a terminal (else in a time limit / the end of the data). See the module docstring."""
    if horizon < 1 or stride < 1:
        raise ValueError(f"horizon {horizon} and stride {stride} must be positive")
    starts = []
    for (a, b), terminal in zip(bounds.tolist(), terminal_end.tolist()):
        last = b - horizon if terminal else b - horizon - 1  # last allowed start
        if last < a:
            continue
        ep = np.arange(a, last + 1, stride)
        if terminal and ep[-1] != last:
            ep = np.append(ep, last)
        starts.append(ep)
    return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean (E,) mask of the held-out episodes: a seeded choice of int(val_fraction E) episodes (at least
    one when val_fraction > 0 and there are two or more episodes)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction {val_fraction} must be in [0, 1)")
    k = int(val_fraction * num_episodes)
    if val_fraction > 0 and k == 0 and num_episodes >= 2:
        k = 1
    mask = np.zeros(num_episodes, bool)
    mask[np.random.default_rng(seed).choice(num_episodes, size=k, replace=False)] = True
    return mask


class TrajectoryWindows:
    """Batched sampling of normalised windows (B, horizon, C) on the store's device.

    The normalised channel table of every stored row is built once; a batch is a gather of
    ``start + arange(horizon)`` rows for starts drawn with ``torch.randint`` (a torch.Generator on the
    store's device), so it never leaves the device. ``normalizer`` (e.g. loaded with a model) replaces the
    statistics computed from the training windows.
    """

    def __init__(self, store: TransitionStore, horizon: int = 32, stride: int = 8, val_fraction: float = 0.05,
                 seed: int = 0, action_eps: float = ACTION_EPS, normalizer: TrajectoryNormalizer | None = None,
                 where: str = "dataset") -> None:
        self.device, self.horizon, self.stride = store.device, int(horizon), int(stride)
        n = len(store)
        dones = store.dones[:n].cpu().numpy() > 0.5
        ends = store.episode_ends[:n].cpu().numpy()  # a terminal inside an episode is no boundary
        stops = np.flatnonzero(ends) + 1
        if len(stops) == 0 or stops[-1] != n:
            stops = np.append(stops, n)  # trailing rows without an end flag: an episode cut by the data's end
        self.bounds = np.stack([np.concatenate([[0], stops[:-1]]), stops], 1)
        terminal_end = dones[self.bounds[:, 1] - 1]
        self.val_episodes = split_episodes(len(self.bounds), val_fraction, seed)
        train_starts = valid_window_starts(self.bounds[~self.val_episodes], terminal_end[~self.val_episodes],
                                           self.horizon, self.stride)
        val_starts = valid_window_starts(self.bounds[self.val_episodes], terminal_end[self.val_episodes],
                                         self.horizon, self.stride)
        if len(train_starts) == 0:
            raise DatasetError(f"{where}: no training window of {self.horizon} steps: every training episode is "
                               f"shorter than the horizon (or ends in a time limit right after it); use a smaller "
                               f"horizon")

        obs_dim, act_dim = store.obs.shape[1], store.actions.shape[1]
        probe = TrajectoryNormalizer(obs_dim, act_dim, torch.zeros(1), torch.ones(1), action_eps)
        raw = probe.raw_channels(store.obs[:n], store.actions[:n], store.rewards[:n], store.dones[:n])
        if normalizer is None:
            normalizer = self._fit(raw, train_starts, obs_dim, act_dim, action_eps)
        elif normalizer.channels != raw.shape[1]:
            raise DatasetError(f"{where}: normaliser of {normalizer.obs_dim}+{normalizer.act_dim} obs+action dims "
                               f"does not fit the dataset's {obs_dim}+{act_dim}")
        self.normalizer = normalizer.to(self.device)
        self.table = self.normalizer.normalize(raw)  # (N, C)
        self.train_starts = torch.as_tensor(train_starts, device=self.device)
        self.val_starts = torch.as_tensor(val_starts, device=self.device)
        self._offsets = torch.arange(self.horizon, device=self.device)

    def _fit(self, raw: Tensor, starts: np.ndarray, obs_dim: int, act_dim: int, eps: float) -> TrajectoryNormalizer:
        count = np.zeros(len(raw) + 1, np.int64)  # windows covering each row (difference array)
        np.add.at(count, starts, 1)
        np.add.at(count, starts + self.horizon, -1)
        weight = torch.as_tensor(np.cumsum(count[:-1]), dtype=torch.float64, device=raw.device)[:, None]
        x = raw.double()
        total = weight.sum()
        mean = (weight * x).sum(0) / total
        std = ((weight * (x - mean) ** 2).sum(0) / total).sqrt()
        std = torch.where(std < 1e-6, torch.ones_like(std), std)
        return TrajectoryNormalizer(obs_dim, act_dim, mean.float().cpu(), std.float().cpu(), eps)

    @property
    def channels(self) -> int:
        return self.normalizer.channels

    def __len__(self) -> int:
        return len(self.train_starts)

    def windows(self, starts: Tensor) -> Tensor:
        """Normalised windows (len(starts), horizon, C) beginning at the given store rows."""
        return self.table[starts[:, None] + self._offsets]

    def sample(self, batch_size: int, generator: torch.Generator | None = None, split: str = "train") -> Tensor:
        starts = self.train_starts if split == "train" else self.val_starts
        if len(starts) == 0:
            raise DatasetError(f"no {split} windows (val_fraction 0, or every held-out episode is too short)")
        index = torch.randint(0, len(starts), (batch_size,), device=self.device, generator=generator)
        return self.windows(starts[index])

    def validation_batches(self, batch_size: int, max_batches: int | None = None) -> Iterator[Tensor]:
        """The validation windows in order, ``batch_size`` at a time (all of them, or the first ``max_batches``)."""
        for k, i in enumerate(range(0, len(self.val_starts), batch_size)):
            if max_batches is not None and k >= max_batches:
                return
            yield self.windows(self.val_starts[i:i + batch_size])

    def decode(self, windows: Tensor) -> Batch:
        """See ``TrajectoryNormalizer.decode``."""
        return self.normalizer.decode(windows)


def decode(windows: Tensor, normalizer: TrajectoryNormalizer) -> Batch:
    """Normalised windows (B, L, C) as B (L - 1) flat transitions; see ``TrajectoryNormalizer.decode``."""
    return normalizer.decode(windows)


class WindowSource:
    """Training windows as a batch source of the trainer (``offrl.data.batches.BatchSource``): ``sample(n)``
    draws n windows with a generator of its own, whose state a checkpoint keeps (exact resume)."""

    def __init__(self, windows: TrajectoryWindows, seed: int) -> None:
        self.windows = windows
        self.generator = torch.Generator(device=windows.device).manual_seed(seed)

    def __len__(self) -> int:
        return len(self.windows)

    def sample(self, batch_size: int) -> Tensor:
        return self.windows.sample(batch_size, self.generator)

    def refresh(self, agent_step: int) -> None:
        """Training windows do not change during training."""

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
