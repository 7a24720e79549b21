"""Reader and writer for Minari datasets stored locally (``minari.load_dataset(id)``; no download).

Every episode is read at load time, so a damaged episode file is reported before training starts.
``write_minari`` creates a local Minari dataset from D4RL-layout arrays (any dataset offrl reads).

A Minari dataset stores its episodes one by one, so episode boundaries need no flag: an episode's steps are
read as one episode, and its ``terminations`` are the rows where TD targets stop. A task solved while the
episode goes on (a D4RL-layout file's ``successes``, OGBench's single-task data) is a termination inside
the episode; ``write_minari`` cuts episodes at terminals and timeouts only, and reading gives both back.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np

from offrl.core.errors import DatasetError
from offrl.data.arrays import DatasetInfo, OfflineData, check_columns

# What h5py, json and minari raise on damaged or truncated files.
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError)


def minari_root() -> Path:
    return Path(os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")).expanduser()


def read_minari(dataset_id: str, name: str | None = None) -> OfflineData:
    import minari  # imported here: minari pulls in its storage backends at import time

    where = f"minari:{dataset_id}"
    data_dir = minari_root() / dataset_id / "data"
    if not data_dir.is_dir():
        local = sorted(minari.list_local_datasets())
        raise DatasetError(
            f"{where}: no local Minari dataset under {minari_root()} (found {local or 'none'}); this machine "
            "cannot download datasets: copy one there, or write one with offrl datasets to-minari "
            "(docs/guide/own-data.md, 'Minari')"
        )
    try:
        dataset = minari.load_dataset(dataset_id)
        metadata, spec = dataset.storage.metadata, dataset.env_spec
        spaces = dataset.observation_space, dataset.action_space
        total_episodes = int(dataset.total_episodes)
    except READ_ERRORS as err:
        raise DatasetError(f"{where}: metadata in {data_dir} is corrupt or unreadable ({_first_line(err)})") from None
    for space_name, space in zip(("observation_space", "action_space"), spaces):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise DatasetError(f"{where}: {space_name} is {space}; offrl reads flat Box spaces only")

    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next_obs", "act", "rew", "term", "end")}
    try:
        for episode in dataset.iterate_episodes():
            raw = {"observations": episode.observations, "actions": episode.actions, "rewards": episode.rewards,
                   "terminations": episode.terminations, "truncations": episode.truncations}
            steps = check_columns({k: v for k, v in raw.items() if k != "observations"},
                                  f"{where}: episode {episode.id}", rows_key="actions")
            check_columns({"observations": raw["observations"]}, f"{where}: episode {episode.id}", "observations")
            if raw["observations"].shape[0] != steps + 1:
                raise DatasetError(
                    f"{where}: episode {episode.id} has {raw['observations'].shape[0]} observations for {steps} "
                    "actions, expected one more observation than actions"
                )
            columns["obs"].append(raw["observations"][:-1])
            columns["next_obs"].append(raw["observations"][1:])
            columns["act"].append(raw["actions"].reshape(steps, -1))
            columns["rew"].append(raw["rewards"])
            columns["term"].append(raw["terminations"])
            end = np.zeros(steps, bool)
            end[-1] = True
            columns["end"].append(end)
    except READ_ERRORS as err:
        raise DatasetError(
            f"{where}: episode data in {data_dir} is damaged or truncated ({_first_line(err)})") from None
    if not columns["rew"]:
        raise DatasetError(f"{where}: the dataset holds no episodes")

    info = DatasetInfo(
        name=name or dataset_id,
        source="minari",
        location=where,
        env_id=spec.id if spec is not None else None,
        env_kwargs=dict(spec.kwargs) if spec is not None else {},
        ref_min_score=_optional_float(metadata.get("ref_min_score")),
        ref_max_score=_optional_float(metadata.get("ref_max_score")),
        extra={"total_episodes": total_episodes, "minari_version": metadata.get("minari_version")},
    )
    info.rows_read = sum(len(r) for r in columns["rew"])
    return OfflineData(
        observations=np.concatenate(columns["obs"]).astype(np.float32),
        actions=np.concatenate(columns["act"]).astype(np.float32),
        rewards=np.concatenate(columns["rew"]).astype(np.float32),
        next_observations=np.concatenate(columns["next_obs"]).astype(np.float32),
        terminals=np.concatenate(columns["term"]).astype(bool),
        episode_ends=np.concatenate(columns["end"]),
        info=info,
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _optional_float(value: object) -> float | None:
    return None if value is None else float(np.asarray(value).item())


def write_minari(dataset_id: str, arrays: dict[str, np.ndarray], env_id: str, *, algorithm: str, description: str,
                 ref_min_score: float | None = None, ref_max_score: float | None = None,
                 code_permalink: str = "https://offrl.local", replace: bool = False) -> Path:
    """A local Minari dataset from D4RL-layout ``arrays`` (observations, actions, rewards,
    next_observations, terminals, timeouts, optionally successes; an episode ends at a terminal or a
    timeout, and the last row ends one; a success is a termination inside its episode), created with
    minari's own API under ``$MINARI_DATASETS_PATH``."""
    import minari
    from minari.data_collector import EpisodeBuffer

    if dataset_id in minari.list_local_datasets():
        if not replace:
            raise DatasetError(f"minari:{dataset_id} already exists under {minari_root()}; choose another id or "
                               "replace it explicitly")
        minari.delete_dataset(dataset_id)
    ends = arrays["terminals"] | arrays["timeouts"]
    ends[-1] = True
    terminations = arrays["terminals"] | arrays.get("successes", False)
    stops = np.flatnonzero(ends) + 1
    buffers = []
    for start, stop in zip(np.concatenate([[0], stops[:-1]]), stops):
        obs = np.concatenate([arrays["observations"][start:stop], arrays["next_observations"][stop - 1:stop]])
        truncations = ~terminations[start:stop] & ends[start:stop]
        buffers.append(EpisodeBuffer(
            observations=list(obs.astype(np.float64)), actions=list(arrays["actions"][start:stop]),
            rewards=list(arrays["rewards"][start:stop].astype(np.float64)),
            terminations=list(terminations[start:stop]), truncations=list(truncations)))
    minari.create_dataset_from_buffers(
        dataset_id, buffers, env=gym.make(env_id), eval_env=gym.make(env_id), algorithm_name=algorithm,
        ref_min_score=ref_min_score, ref_max_score=ref_max_score, author="offrl", author_email="offrl@localhost",
        code_permalink=code_permalink, description=description)
    return minari_root() / dataset_id
