"""Hindsight goal relabelling: the batch source of goal-conditioned training (GCBC, GCIQL, ...).

Each sampled transition (s, a, s') gets a goal g drawn, as OGBench's goal-conditioned baselines draw
them, from the achieved goal of a future state of the same episode (uniformly over the rest of the
episode, or with geometric offsets), of the current transition, or of a random row. g replaces the
desired-goal slice of s and s' (found through the data's ``ObservationSpec``); the reward becomes the
env's sparse success test 1{||achieved(s') - g|| <= threshold}, and the transition ends there
(done = success). Agents see ordinary flat batches: BC becomes GCBC, IQL becomes GCIQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from offrl.core.config import between, fraction, non_negative, validate
from offrl.core.errors import ConfigError, DatasetError
from offrl.core.spec import ACHIEVED_KEY, GOAL_KEY, ObservationSpec
from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.batches import StoreSampler
from offrl.data.store import Batch, ObsNormalizer, TransitionStore

DEFAULT_THRESHOLD = 0.45  # gymnasium-robotics' PointMaze success radius


def goal_threshold(info: DatasetInfo) -> float:
    """The success radius of a goal dataset (``DatasetInfo``): the ``goal_threshold`` it records, else
    ``DEFAULT_THRESHOLD``."""
    return float(info.extra.get("goal_threshold", DEFAULT_THRESHOLD))


@dataclass
class GoalMixture:
    """Where a relabelled goal comes from: shares of the three sources and the future offsets' law."""

    p_current: float = fraction(0.0)  # goal = this transition's achieved goal
    p_trajectory: float = fraction(1.0)  # goal = a future achieved goal of the same episode (OGBench GCBC: 1.0)
    p_random: float = fraction(0.0)  # goal = the achieved goal of a random row
    # None: future offsets uniform; else offsets ~ Geometric(1 - geometric)
    geometric: float | None = between(None, 0, 1, open_low=True, open_high=True)  # law of the future offsets

    def describe(self) -> str:
        """The mixture in words: ``20% current, 50% future (geometric 0.99), 30% random``."""
        future = "uniform" if self.geometric is None else f"geometric {self.geometric:g}"
        parts = [(self.p_current, "current"), (self.p_trajectory, f"future ({future})"), (self.p_random, "random")]
        return ", ".join(f"{share:.0%} {source}" for share, source in parts if share > 0)

    def check(self, where: str) -> None:
        """The shares sum to 1 (each is in [0, 1] by its range)."""
        shares = {f"{where}.{name}": getattr(self, name) for name in ("p_current", "p_trajectory", "p_random")}
        if abs(sum(shares.values()) - 1.0) > 1e-6:
            given = ", ".join(f"{key}={value}" for key, value in shares.items())
            raise ConfigError(f"{given}: expected shares that sum to 1")


@dataclass
class PolicyGoals(GoalMixture):
    """The policy's own goals; by default OGBench's GCIQL actor: a uniform future state of the episode."""

    enabled: bool = False  # False: the policy sees the transition's goals


@dataclass
class GoalRelabelConfig(GoalMixture):
    """The transition's goals (its reward and end: what values and critics learn) are this mixture;
    ``policy.enabled`` gives the policy's loss goals of its own (``Batch.policy_obs``), as OGBench's GCIQL draws
    its value's goals from (0.2, 0.5, 0.3, geometric 0.99) and its policy's from (0, 1, 0, uniform)."""

    enabled: bool | None = None  # None: on when the data's observation spec has goal keys
    threshold: float | None = non_negative(None)  # success radius; None: the data's goal_threshold or 0.45 (PointMaze)
    negative: bool = False  # reward success - 1 (OGBench's gc_negative, its GCIQL default) instead of success
    policy: PolicyGoals = field(default_factory=PolicyGoals)


def wants_relabelling(cfg: GoalRelabelConfig, spec: ObservationSpec | None, where: str) -> bool:
    has_goals = spec is not None and spec.has_goals
    if cfg.enabled and not has_goals:
        keys = ["observation"] if spec is None else spec.keys
        raise DatasetError(f"{where}: dataset.relabel.enabled=true but the data has no '{GOAL_KEY}' and "
                           f"'{ACHIEVED_KEY}' observation keys (it has {keys})")
    return has_goals if cfg.enabled is None else cfg.enabled


class GoalRelabel(StoreSampler):
    """A batch source over an offline store whose rows were written episode by episode (its length,
    refresh and checkpoint state are StoreSampler's: the store's sampling RNG)."""

    def __init__(self, store: TransitionStore, spec: ObservationSpec, normalizer: ObsNormalizer,
                 cfg: GoalRelabelConfig, threshold: float = DEFAULT_THRESHOLD) -> None:
        validate(cfg, "dataset.relabel")
        if "returns" in store.columns:  # returns-to-go of the recorded rewards, which relabelling replaces
            raise ConfigError("dataset.relabel: relabelled goals come with rewards of their own, and the returns-to-"
                              "go the agent reads are those of the recorded rewards; expected dataset.relabel.enabled="
                              "false")
        super().__init__(store)
        self.cfg = cfg
        self.threshold = cfg.threshold if cfg.threshold is not None else threshold
        self.goal, self.achieved = spec.slice(GOAL_KEY), spec.slice(spec.achieved_key)
        if self.goal.stop - self.goal.start != self.achieved.stop - self.achieved.start:
            raise DatasetError(f"goal and achieved-goal keys differ in size ({self.goal} vs {self.achieved})")
        normalizer = normalizer.to(store.device)
        self.mean, self.std = normalizer.mean, normalizer.std
        ends = store.episode_ends[: len(store)].clone()
        ends[-1] = True
        # stop[i]: one past the last row of row i's episode
        last = torch.nonzero(ends).squeeze(1)
        self.stop = last[torch.searchsorted(last, torch.arange(len(store), device=store.device))] + 1

    def _achieved(self, next_obs: Tensor) -> Tensor:
        """Raw (unnormalised) achieved goals of normalised next observations."""
        a = self.achieved
        return next_obs[:, a] * self.std[a] + self.mean[a]

    def _goal_rows(self, index: Tensor, mixture: GoalMixture) -> Tensor:
        """For each row in ``index``, the row whose achieved goal becomes its goal under ``mixture``."""
        store, g = self.store, self.store.generator
        n, device = len(index), index.device
        left = (self.stop[index] - index).float()  # rows from this one to the end of its episode
        u = torch.rand(n, device=device, generator=g)
        if mixture.geometric is None:
            offset = (u * left).floor().long()
        else:  # P(offset = k) proportional to geometric^k, truncated at the episode's end
            offset = (torch.log1p(-u) / math.log(mixture.geometric)).floor().long()
            offset = torch.minimum(offset, left.long() - 1)
        random_rows = torch.randint(0, len(store), (n,), device=device, generator=g)
        choice = torch.rand(n, device=device, generator=g)
        return torch.where(choice < mixture.p_current, index,
                           torch.where(choice < mixture.p_current + mixture.p_trajectory, index + offset, random_rows))

    def _with_goals(self, obs: Tensor, goal_raw: Tensor) -> Tensor:
        obs = obs.clone()
        obs[:, self.goal] = (goal_raw - self.mean[self.goal]) / self.std[self.goal]
        return obs

    def sample(self, batch_size: int) -> Batch:
        store, cfg = self.store, self.cfg
        index = torch.randint(0, len(store), (batch_size,), device=store.device, generator=store.generator)
        goal_raw = self._achieved(store.next_obs[self._goal_rows(index, cfg)])
        success = ((self._achieved(store.next_obs[index]) - goal_raw).norm(dim=1) <= self.threshold).float()
        obs = store.obs[index]
        policy_obs = None
        if cfg.policy.enabled:
            policy_obs = self._with_goals(obs, self._achieved(store.next_obs[self._goal_rows(index, cfg.policy)]))
        reward = success - 1.0 if cfg.negative else success
        return Batch(self._with_goals(obs, goal_raw), store.actions[index], reward,
                     self._with_goals(store.next_obs[index], goal_raw), success, policy_obs, **store.columns_at(index))


def goal_statistics(observations: np.ndarray, next_observations: np.ndarray, episode_ends: np.ndarray,
                    spec: ObservationSpec, threshold: float) -> dict[str, float | int]:
    """What the behaviour policy did with the goals it was given, for data whose rows hold a desired and an
    achieved goal: a goal counts as reached when the next achieved goal comes within ``threshold`` of the
    desired goal (gymnasium-robotics' success test), once per arrival (a continuing task resamples goals).
    Goal coverage on a grid of ``threshold``-wide cells: distinct cells of desired goals and of achieved
    goals, and the share of desired-goal cells that some achieved goal of the data lies in."""
    desired = observations[:, spec.slice(GOAL_KEY)].astype(np.float64)
    achieved = next_observations[:, spec.slice(ACHIEVED_KEY)].astype(np.float64)
    reached = np.linalg.norm(achieved - desired, axis=1) <= threshold
    ends = episode_ends.astype(bool).copy()
    ends[-1] = True
    episode = np.concatenate([[0], np.cumsum(ends)[:-1]])
    continues = np.concatenate([[False], reached[:-1] & ~ends[:-1]])  # still at the goal of the step before
    arrivals = reached & ~continues
    per_episode = np.bincount(episode, weights=arrivals, minlength=int(ends.sum()))
    low = np.minimum(desired.min(axis=0), achieved.min(axis=0))
    cell = lambda x: np.floor((x - low) / threshold).astype(np.int64)  # noqa: E731
    desired_cells, achieved_cells = np.unique(cell(desired), axis=0), np.unique(cell(achieved), axis=0)
    visited = {tuple(c) for c in achieved_cells}
    return {"episodes": int(ends.sum()), "threshold": threshold,
            "episode_success_rate": float((per_episode > 0).mean()),
            "goals_reached_per_episode": float(per_episode.mean()), "steps_at_goal_fraction": float(reached.mean()),
            "desired_goal_cells": len(desired_cells), "achieved_goal_cells": len(achieved_cells),
            "desired_cells_reached_fraction": float(np.mean([tuple(c) in visited for c in desired_cells]))}


def goals_from_observations(data: OfflineData, goal_env_id: str, threshold: float) -> OfflineData:
    """Goal-conditioned data whose goals are whole observations (OGBench): each row gets a
    ``desired_goal`` slot (filled by relabelling) in the layout of ``GoalFromReset``'s observations, and
    the env becomes ``goal_env_id`` (the task's env with that wrapper)."""

    box = gym.spaces.Box(-np.inf, np.inf, (data.obs_dim,))
    spec = ObservationSpec.from_space(gym.spaces.Dict({"observation": box, "desired_goal": box}))
    expand = lambda obs: spec.flatten({"observation": obs, "desired_goal": np.zeros_like(obs)})  # noqa: E731
    info = replace(data.info, env_id=goal_env_id, obs_spec=spec,
                   extra={**data.info.extra, "goal_threshold": threshold})
    return replace(data, observations=expand(data.observations), next_observations=expand(data.next_observations),
                   info=info)


def observations_only(data: OfflineData) -> OfflineData:
    """``data`` without the ``desired_goal`` slot ``goals_from_observations`` added (what the file holds);
    other data unchanged. For analysis: the slot is empty until relabelling fills it."""
    spec = data.info.obs_spec
    if data.info.extra.get("dataset_form") != "goal-conditioned" or spec is None or ACHIEVED_KEY in spec.keys:
        return data
    part = spec.slice("observation")
    return replace(data, observations=data.observations[:, part], next_observations=data.next_observations[:, part],
                   info=replace(data.info, obs_spec=None))

