"""Dataset configuration and the one entry point that turns it into checked ``OfflineData``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import gymnasium as gym
import numpy as np

from offrl.core.config import MAX_ROWS, one_of, positive
from offrl.core.errors import ConfigError, DatasetError
from offrl.core.spec import ObservationSpec
from offrl.data.arrays import OfflineData, transform_rewards
from offrl.data.cache import cache_file
from offrl.data.d4rl import read_d4rl_hdf5
from offrl.data.goals import GoalRelabelConfig, goals_from_observations
from offrl.data.minari_reader import read_minari
from offrl.envs import GOAL_ENV_PREFIX, env_spaces, env_spec, observation_spec, register_extra_envs

SOURCES = ("recipe", "hdf5", "minari")


@dataclass
class DatasetConfig:
    name: str = "idp-mixed"
    source: str = one_of(*SOURCES)  # recipe | hdf5 | minari
    path: str | None = None  # source=hdf5: a D4RL-layout file
    id: str | None = None  # source=minari: a locally stored dataset id
    size: int | None = positive(None, most=MAX_ROWS)  # source=recipe: transitions to generate (None: the recipe's size)
    env_id: str | None = None  # evaluation env; None: the one the dataset names
    ref_min_score: float | None = None  # override the dataset's reference returns
    ref_max_score: float | None = None
    reward_normalization: str = one_of("none", "return_range")  # return_range: r * 1000 / (max - min episode return)
    reward_scale: float = 1.0
    reward_shift: float = 0.0
    # goal-conditioned data (an observation spec with desired_goal / achieved_goal): hindsight relabelling
    relabel: GoalRelabelConfig = field(default_factory=GoalRelabelConfig)


def resolve_dataset(arg: str, size: int | None = None) -> DatasetConfig:
    """A command-line dataset argument as a DatasetConfig: ``*.hdf5``/``*.h5`` is a D4RL-layout file,
    ``minari:<id>`` a local Minari dataset, anything else a buildable name (``dataset_names()``), at
    ``size`` transitions if given (a smaller build)."""
    if arg.startswith("minari:"):
        dataset_id = arg.removeprefix("minari:")
        return DatasetConfig(name=dataset_id, source="minari", id=dataset_id)
    path = Path(arg).expanduser()
    if path.suffix.lower() in (".hdf5", ".h5"):
        return DatasetConfig(name=path.stem, source="hdf5", path=str(path))
    return DatasetConfig(name=arg, source="recipe", size=size)


# builds a named dataset into the cache (if it is not there) and returns its file:
# offrl.generation.recipes.ensure_recipe_dataset(name, size, log)
Builder = Callable[[str, "int | None", Callable[[str], None]], Path]


def load_dataset(cfg: DatasetConfig, log: Callable[[str], None] = print, build: Builder | None = None) -> OfflineData:
    """Read the dataset ``cfg`` describes, apply overrides and reward preprocessing, and check it
    against its evaluation environment (observation size, action bounds). A named dataset
    (``source=recipe``) is read from the cache; ``build`` (the dataset-generation layer's
    ``ensure_recipe_dataset``) builds it first where it is missing."""
    if cfg.source == "hdf5":
        if not cfg.path:
            raise ConfigError("dataset=hdf5 needs dataset.path=<file.hdf5>")
        data = read_d4rl_hdf5(cfg.path, name=None if cfg.name == "hdf5" else cfg.name)
    elif cfg.source == "minari":
        if not cfg.id:
            raise ConfigError("dataset=minari needs dataset.id=<minari dataset id>")
        data = read_minari(cfg.id, name=cfg.id)
    elif cfg.source == "recipe":
        path = build(cfg.name, cfg.size, log) if build is not None else cache_file(cfg.name, cfg.size)
        if not path.exists():
            raise DatasetError(f"dataset '{cfg.name}' is not built ({path} not found); build it with: offrl datasets "
                               f"build {cfg.name}" + ("" if cfg.size is None else f" --size {cfg.size}"))
        data = read_d4rl_hdf5(path, name=cfg.name)
    else:
        raise ConfigError(f"dataset.source='{cfg.source}' is unknown; expected one of {list(SOURCES)}")

    env_id = cfg.env_id or data.info.env_id
    if "episode_limit" in data.info.extra and env_id:  # a file without timeouts
        limit = env_spec(env_id, where=f"{data.info.location}: evaluation env").max_episode_steps
        if limit:
            data = read_d4rl_hdf5(data.info.location, name=data.info.name, episode_limit=limit)
    if data.info.extra.get("dataset_form") == "goal-conditioned" and data.info.obs_spec is None:

        register_extra_envs()  # the goal-in-observation versions of the data's env
        # OGBench relabels a goal as reached only at its own state: an exact match of the full observation
        data = goals_from_observations(data, GOAL_ENV_PREFIX + data.info.env_id, threshold=1e-4)
    info = data.info
    if cfg.env_id and cfg.env_id != info.env_id:
        info.env_kwargs = {}  # the file's env arguments belong to the file's env
    info.env_id = cfg.env_id or info.env_id
    if cfg.ref_min_score is not None:
        info.ref_min_score = cfg.ref_min_score
    if cfg.ref_max_score is not None:
        info.ref_max_score = cfg.ref_max_score
    if info.ref_min_score is not None and info.ref_min_score == info.ref_max_score:
        raise DatasetError(f"{info.location}: ref_min_score = ref_max_score = {info.ref_min_score}; normalised scores "
                           "need two different reference returns (dataset.ref_min_score, dataset.ref_max_score)")
    data = transform_rewards(data, cfg.reward_normalization, cfg.reward_scale, cfg.reward_shift)
    if info.env_id is not None:
        data = fit_to_env(data)
    return data


def fit_to_env(data: OfflineData) -> OfflineData:
    """Check the data against its environment and map actions into [-1, 1] if the env's bounds differ."""
    info = data.info
    env_spec(info.env_id, where=f"{info.location}: evaluation env")
    try:
        obs_space, act_space = env_spaces(info.env_id, info.env_kwargs)
    except gym.error.Error as err:
        raise DatasetError(f"{info.location}: evaluation env '{info.env_id}' cannot be made ({err})") from None
    env_obs = observation_spec(info.env_id, info.env_kwargs)
    if info.obs_spec is not None or len(env_obs.fields) > 1:
        (info.obs_spec or ObservationSpec.flat(data.obs_dim)).check_fits(env_obs, info.location)
    if obs_space.shape != (data.obs_dim,):
        raise DatasetError(
            f"{info.location}: observations have shape (N, {data.obs_dim}) but env '{info.env_id}' "
            f"observes {obs_space.shape}; set dataset.env_id to the env the data came from"
        )
    if act_space.shape != (data.act_dim,):
        raise DatasetError(
            f"{info.location}: actions have shape (N, {data.act_dim}) but env '{info.env_id}' "
            f"expects {act_space.shape}"
        )
    low, high = act_space.low.astype(np.float64), act_space.high.astype(np.float64)
    margin = 1e-6 * (high - low)
    outside = ((data.actions < low - margin) | (data.actions > high + margin)).any(axis=1)
    info.extra["actions_outside_bounds"] = int(outside.sum())
    if np.allclose(low, -1.0) and np.allclose(high, 1.0):
        return data
    actions = 2.0 * (data.actions - low) / (high - low) - 1.0
    return replace(data, actions=np.clip(actions, -1.0, 1.0).astype(np.float32))
