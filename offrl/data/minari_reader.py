"""Reader for Minari datasets stored locally (``minari.load_dataset(id)``; no download)."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.errors import DatasetError


def read_minari(dataset_id: str, name: str | None = None) -> OfflineData:
    import minari  # imported here: minari pulls in its storage backends at import time

    where = f"minari:{dataset_id}"
    try:
        dataset = minari.load_dataset(dataset_id)
    except (FileNotFoundError, ValueError, KeyError) as err:
        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
        raise DatasetError(
            f"{where}: not found among local Minari datasets under {root} ({err}); "
            "this machine cannot download, so create or copy the dataset there first"
        ) from None
    for space_name in ("observation_space", "action_space"):
        space = getattr(dataset, space_name)
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise DatasetError(f"{where}: {space_name} is {space}; offrl reads flat Box spaces only")

    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next_obs", "act", "rew", "term", "end")}
    for episode in dataset.iterate_episodes():
        steps = len(episode.actions)
        if episode.observations.shape[0] != steps + 1:
            raise DatasetError(
                f"{where}: episode {episode.id} has {episode.observations.shape[0]} observations for {steps} "
                "actions, expected one more observation than actions"
            )
        columns["obs"].append(episode.observations[:-1])
        columns["next_obs"].append(episode.observations[1:])
        columns["act"].append(episode.actions.reshape(steps, -1))
        columns["rew"].append(episode.rewards)
        columns["term"].append(episode.terminations)
        end = np.zeros(steps, bool)
        end[-1] = True
        columns["end"].append(end)
    if not columns["rew"]:
        raise DatasetError(f"{where}: the dataset holds no episodes")

    metadata = dataset.storage.metadata
    spec = dataset.env_spec
    info = DatasetInfo(
        name=name or dataset_id,
        source="minari",
        location=where,
        env_id=spec.id if spec is not None else None,
        env_kwargs=dict(spec.kwargs) if spec is not None else {},
        ref_min_score=_optional_float(metadata.get("ref_min_score")),
        ref_max_score=_optional_float(metadata.get("ref_max_score")),
        extra={"total_episodes": int(dataset.total_episodes), "minari_version": metadata.get("minari_version")},
    )
    return OfflineData(
        observations=np.concatenate(columns["obs"]).astype(np.float32),
        actions=np.concatenate(columns["act"]).astype(np.float32),
        rewards=np.concatenate(columns["rew"]).astype(np.float32),
        next_observations=np.concatenate(columns["next_obs"]).astype(np.float32),
        terminals=np.concatenate(columns["term"]).astype(bool),
        episode_ends=np.concatenate(columns["end"]),
        info=info,
    )


def _optional_float(value: object) -> float | None:
    return None if value is None else float(np.asarray(value).item())
