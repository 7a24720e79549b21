"""Plain numpy transitions plus metadata: what every reader returns and every store is built from."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from offrl.core.errors import DatasetError
from offrl.core.spec import ObservationSpec


@dataclass
class DatasetInfo:
    """Where a dataset came from and how to score a policy on it."""

    name: str
    source: str  # "hdf5" | "minari" | "recipe"
    location: str  # file path or Minari id, used in error messages
    env_id: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    ref_min_score: float | None = None  # mean return of a uniform-random policy
    ref_max_score: float | None = None  # mean return of the expert reference policy
    extra: dict[str, Any] = field(default_factory=dict)  # recipe, episode counts, ...
    obs_spec: ObservationSpec | None = None  # structure of the flat observations (None: one flat field)
    rows_read: int | None = None  # rows in the source before any were dropped
    dropped: dict[str, int] = field(default_factory=dict)  # rows the reader dropped, by reason

    def normalized_score(self, episode_return: float) -> float | None:
        """D4RL normalised score, x100: 100 * (R - R_random) / (R_expert - R_random)."""
        if self.ref_min_score is None or self.ref_max_score is None:
            return None
        return 100.0 * (episode_return - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


@dataclass
class OfflineData:
    """Flat transitions. ``terminals`` is a true termination (bootstrap mask); ``episode_ends`` marks
    the last transition of each episode in this array (termination, time limit, or end of data)."""

    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32
    rewards: np.ndarray  # (N,) float32
    next_observations: np.ndarray  # (N, obs_dim) float32
    terminals: np.ndarray  # (N,) bool
    episode_ends: np.ndarray  # (N,) bool
    info: DatasetInfo

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def validate(self) -> None:
        """Shapes, dtypes and finiteness after conversion (raw columns pass ``check_columns`` first)."""
        where = self.info.location
        n = len(self.rewards)
        if n == 0:
            raise DatasetError(f"{where}: the dataset holds no transitions")
        for key in ("observations", "actions", "rewards", "next_observations", "terminals", "episode_ends"):
            expected = np.bool_ if key in ("terminals", "episode_ends") else np.float32
            if getattr(self, key).dtype != expected:
                raise DatasetError(f"{where}: key '{key}' has dtype {getattr(self, key).dtype} after reading, "
                                   f"expected {np.dtype(expected)} (a reader must convert through check_columns)")
        shapes = {
            "observations": (self.observations, 2),
            "actions": (self.actions, 2),
            "rewards": (self.rewards, 1),
            "next_observations": (self.next_observations, 2),
            "terminals": (self.terminals, 1),
            "episode_ends": (self.episode_ends, 1),
        }
        for key, (array, ndim) in shapes.items():
            if array.ndim != ndim or array.shape[0] != n:
                raise DatasetError(
                    f"{where}: key '{key}' has shape {array.shape}, expected {'(N, d)' if ndim == 2 else '(N,)'} "
                    f"with N={n} (the length of 'rewards')"
                )
        if self.next_observations.shape != self.observations.shape:
            raise DatasetError(
                f"{where}: 'next_observations' has shape {self.next_observations.shape}, "
                f"expected {self.observations.shape} like 'observations'"
            )
        for key in ("observations", "actions", "rewards", "next_observations"):
            check_finite(getattr(self, key), where, key)

    def episode_bounds(self) -> np.ndarray:
        """(E, 2) array of [start, stop) index pairs, one per episode, in storage order."""
        return episode_bounds(self.episode_ends)

    def episode_returns(self) -> np.ndarray:
        bounds = self.episode_bounds()
        sums = np.add.reduceat(self.rewards.astype(np.float64), bounds[:, 0])
        return sums

    def next_actions(self) -> np.ndarray:
        """(N, act_dim): each row's next action within its episode, the action of the row after it. The last row of
        an episode (a termination, a time limit, the end of the data) has no next row in the data and repeats its
        own action: after a termination no TD target reads it; after a time limit the action taken at its next
        observation was never recorded, and the last one taken stands in for it."""
        ends = self.episode_ends.copy()
        ends[-1] = True  # trailing rows without an end form a last episode
        rows = np.arange(len(self))
        return self.actions[np.where(ends, rows, rows + 1)]

    def returns_to_go(self, discount: float) -> np.ndarray:
        """Each row's discounted return-to-go (``returns_to_go``, at ``discount``). A DatasetError where the data
        cannot say where its episodes end: a file without timeouts whose env has no time limit to split it at (an
        episode cut by a time limit would run on into the next one), or data with no episode end before its last
        row (all of it one episode)."""
        where = self.info.location
        if "episode_limit" in self.info.extra and self.info.extra["episode_limit"] is None:
            raise DatasetError(f"{where}: returns-to-go need the episodes' ends, and the file has no 'timeouts' key "
                               "and its env no time limit to split episodes at (an episode cut by a time limit would "
                               "run on into the next); add 'timeouts' to the file")
        if len(self) > 1 and not self.episode_ends[:-1].any():
            raise DatasetError(f"{where}: returns-to-go need the episodes' ends, and no row before the last ends an "
                               f"episode (no terminals, no timeouts): all {len(self)} rows would be one episode")
        return returns_to_go(self.rewards, self.terminals, self.episode_ends, discount)

    def with_rewards(self, rewards: np.ndarray) -> OfflineData:
        return replace(self, rewards=rewards.astype(np.float32))

    def summary(self) -> dict[str, Any]:
        """What the reader took from the source: counts, dropped rows and the reference returns."""
        ends = self.episode_ends
        return {
            "source": self.info.source,
            "location": self.info.location,
            "rows_read": self.info.rows_read if self.info.rows_read is not None else len(self),
            "transitions": len(self),
            "episodes": int(ends.sum() + (not ends[-1])),
            "terminals": int(self.terminals.sum()),  # every row where TD targets stop
            "timeouts": int((ends & ~self.terminals).sum()),  # episodes cut by a time limit or the data's end
            # terminals inside an episode: the task solved while the episode goes on (OGBench single-task)
            "success_terminals": int((self.terminals & ~ends).sum()),
            "dropped": dict(self.info.dropped),
            "ref_min_score": self.info.ref_min_score,
            "ref_max_score": self.info.ref_max_score,
        }

    def describe(self) -> str:
        """``summary()`` as one line for the console."""
        s = self.summary()
        dropped = ", ".join(f"{count} {reason}" for reason, count in s["dropped"].items() if count) or "none"
        refs = ("none" if s["ref_min_score"] is None or s["ref_max_score"] is None
                else f"random {s['ref_min_score']:.1f}, expert {s['ref_max_score']:.1f}")
        limit = self.info.extra.get("episode_limit", 0)
        split = ("" if limit == 0 else "; the file has no timeouts: " + (
            f"episodes split at the env's limit of {limit} steps" if limit else "episodes end at terminals only"))
        successes = (f"; {s['success_terminals']} success terminals inside episodes, where TD targets stop and the "
                     "episode goes on" if s["success_terminals"] else "")
        outside = self.info.extra.get("actions_outside_bounds", 0)
        split += f"; {_count(outside, 'row')} with actions outside the env's bounds" if outside else ""
        episodes = _count(s["episodes"], "episode")
        return (f"loaded {s['location']} ({s['source']}): {s['transitions']} transitions in {episodes} "
                f"({s['terminals'] - s['success_terminals']} terminal, {s['timeouts']} time-limit ends{successes}) "
                f"from {s['rows_read']} rows; "
                f"dropped: {dropped}; reference returns: {refs}{split}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def returns_to_go(rewards: np.ndarray, terminals: np.ndarray, episode_ends: np.ndarray, discount: float) -> np.ndarray:
    """The discounted return-to-go of every row, summed backwards through each episode (float32, computed in
    float64)::

        G_t = r_t + discount * (1 - terminal_t) * (1 - episode_end_t) * G_{t+1}

    The sum stops at a terminal, also at one inside an episode (a success terminal of OGBench single-task data):
    the TD targets stop there too, so G is the return that Q estimates. An episode that ends without a terminal was
    cut by a time limit (or by the end of the data): its rows get the return of the episode as truncated, nothing
    added for the steps after the cut. The data holds no rewards for those steps, and a bootstrapped value would make
    G depend on the critic it is meant to bound (Cal-QL's lower bound); the official Cal-QL code and CORL treat
    D4RL's time-limit ends the same way. Near a cut, G therefore underestimates the return of the uncut episode where
    rewards are positive (a lower bound stays one) and overestimates it where they are negative."""
    keep = (discount * ~(np.asarray(terminals, bool) | np.asarray(episode_ends, bool))).tolist()
    rewards = np.asarray(rewards, np.float64).tolist()
    out = [0.0] * len(rewards)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + keep[t] * g
        out[t] = g
    return np.asarray(out, dtype=np.float32)


def episode_bounds(episode_ends: np.ndarray) -> np.ndarray:
    """Start/stop pairs from episode-end flags; trailing transitions without an end form a last episode."""
    ends = np.flatnonzero(episode_ends) + 1
    if len(ends) == 0 or ends[-1] != len(episode_ends):
        ends = np.append(ends, len(episode_ends))
    starts = np.concatenate([[0], ends[:-1]])
    return np.stack([starts, ends], axis=1)


NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


FLAG_KEYS = ("terminals", "timeouts", "successes", "terminations", "truncations")  # 0/1 flags in D4RL and Minari files


def check_columns(columns: dict[str, np.ndarray | None], where: str, rows_key: str = "rewards") -> int:
    """The gate every reader passes its raw columns through before converting anything: each present
    column is a numeric array (refused by dtype, so byte strings, str or object arrays are never
    coerced), holds at least one row, and all have as many rows as ``rows_key``. Returns that count."""
    for key, array in columns.items():
        if array is None:
            continue
        dtype = getattr(array, "dtype", None)
        if dtype is None or dtype.kind not in NUMERIC_KINDS:
            shown = type(array).__name__ if dtype is None else f"dtype {dtype}"
            raise DatasetError(f"{where}: key '{key}' holds {shown}, expected numbers (bool, int or float)")
        if array.ndim == 0:
            raise DatasetError(f"{where}: key '{key}' is a scalar, expected one entry per row")
    n = len(columns[rows_key])
    if n == 0:
        raise DatasetError(f"{where}: key '{rows_key}' has 0 rows; the dataset holds no transitions")
    for key, array in columns.items():
        if array is not None and len(array) != n:
            raise DatasetError(f"{where}: key '{key}' has {len(array)} rows, expected {n} (the length of '{rows_key}')")
        if array is not None and array.dtype.kind == "f" and array.dtype.itemsize > 4:
            check_float32_range(array, where, key)
        if key in FLAG_KEYS and array is not None and array.dtype.kind != "b":
            bad = ~np.isin(array, (0, 1))
            if bad.any():
                examples = ", ".join(f"{v:g}" for v in np.unique(array[bad])[:3])
                first = int(np.flatnonzero(bad)[0])
                raise DatasetError(f"{where}: key '{key}' holds {int(bad.sum())} value(s) other than 0 and 1 (e.g. "
                                   f"{examples}, first at row {first}); expected episode-end flags")
    return n


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32_range(array: np.ndarray, where: str, key: str) -> None:
    """offrl trains in float32: a finite value beyond its range (a float64 1e300) would become inf."""
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(array) & (np.abs(array) > FLOAT32_MAX)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(f"{where}: key '{key}' holds {int(bad.sum())} value(s) outside float32's range (e.g. "
                           f"{array[index]:g} at index {index}); expected magnitudes below {FLOAT32_MAX:.3g}")


def check_finite(array: np.ndarray, where: str, key: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise DatasetError(
            f"{where}: key '{key}' holds NaN/inf (first at index {tuple(int(i) for i in bad)}, "
            f"value {array[tuple(bad)]}); expected finite values"
        )


def transform_rewards(data: OfflineData, normalization: str, scale: float, shift: float) -> OfflineData:
    """Reward preprocessing applied once at load: r' = scale * f(r) + shift.

    ``normalization``: "none" (f = identity) or "return_range" (f(r) = r * 1000 / (max episode
    return - min episode return), the IQL / CORL convention for locomotion datasets).
    """
    rewards = data.rewards.astype(np.float64)
    if normalization == "return_range":
        returns = data.episode_returns()
        spread = returns.max() - returns.min()
        if spread <= 0:
            raise DatasetError(
                f"{data.info.location}: reward_normalization=return_range needs episodes with different "
                f"returns; all {len(returns)} episodes return {returns.max():.3f}"
            )
        rewards = rewards * 1000.0 / spread
    elif normalization != "none":
        raise DatasetError(
            f"dataset.reward_normalization='{normalization}' is unknown; expected 'none' or 'return_range'"
        )
    return data.with_rewards(rewards * scale + shift)
