"""Reader and writer for D4RL-layout hdf5 files, without the ``d4rl`` package.

Layout: ``observations, actions, rewards, terminals`` (+ ``timeouts``, ``successes``, ``next_observations``,
``infos/*``, ``metadata/*``). A timeout is a time limit, never a terminal. Without
``next_observations`` the next state is ``observations[i + 1]`` and the transition at a timeout is
dropped (its successor belongs to the next episode), as d4rl's ``qlearning_dataset`` does.

Episode ends and success are separate keys. ``terminals`` and ``timeouts`` are episode ends, as every
D4RL loader reads them (a terminal: the episode ended there and TD targets do not bootstrap; a timeout:
a time limit). ``successes`` (optional, offrl's) marks transitions that solve the task while the episode
goes on, as in OGBench's single-task data, where the env keeps running after a success: TD targets stop
there (``OfflineData.terminals``) but the episode does not end (``OfflineData.episode_ends``), so trajectory
windows and goal relabelling see whole episodes. It is a key of its own rather than OGBench's layout
(``terminals`` = episode ends, ``masks`` = 0 at a success) because in a D4RL-layout file ``terminals`` already
means "the episode terminated": reusing it for episode ends would make every time limit a termination to
any D4RL loader, while a loader that does not know ``successes`` still reads whole episodes with correct
time-limit ends. offrl's single-task files written before this key held the successes in ``terminals``,
which cut an episode at every success; they are refused with the command that rebuilds them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from offrl.core import checkpoint
from offrl.core.errors import DatasetError
from offrl.core.spec import ObservationSpec
from offrl.data.arrays import DatasetInfo, OfflineData, check_columns
from offrl.data.cache import cache_dir

# d4rl/infos.py: (REF_MIN, REF_MAX) shared by every quality and version of an environment.
D4RL_REFERENCE_SCORES = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
# The closest gymnasium task for each D4RL family (gymnasium's v5 physics differ from mujoco-py's).
D4RL_EVAL_ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5", "ant": "Ant-v5"}
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")


def read_d4rl_hdf5(path: str | os.PathLike, name: str | None = None, episode_limit: int | None = None) -> OfflineData:
    """A D4RL-layout hdf5 file as checked transitions. A file without ``timeouts`` (D4RL's v0 files) has its
    time-limit ends at every ``episode_limit`` steps of an episode, as d4rl's own loader splits them (from the
    env's ``max_episode_steps``); without a limit such a file's episodes end at terminals only."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (expected a D4RL-layout hdf5 file)")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path}: not a readable hdf5 file ({err})") from None
    try:
        with handle:
            missing = [key for key in REQUIRED_KEYS if key not in handle]
            if missing:
                raise DatasetError(
                    f"{path}: missing key(s) {missing}; a D4RL file needs {list(REQUIRED_KEYS)} "
                    f"(found {sorted(handle.keys())})"
                )
            raw = {key: _read(handle, key, path)
                   for key in (*REQUIRED_KEYS, "timeouts", "successes", "next_observations")}
            metadata = _read_metadata(handle)
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        # a damaged file (a write cut short, a copy gone wrong): h5py fails in many ways, each one line here
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DatasetError(f"{path}: the file is damaged, its arrays cannot be read ({reason}); {_rebuild_hint(path)}")\
            from None
    return _to_transitions(raw, path, name or path.stem, metadata, episode_limit)


def _in_cache(path: Path) -> bool:
    return path.parent.resolve() == cache_dir().resolve()


def _rebuild_hint(path: Path) -> str:
    """How to rebuild a file offrl built (one in the dataset cache), else what to do with the user's own."""
    if not _in_cache(path):
        return "replace it with an intact copy"
    match = re.fullmatch(r"(.+)-(\d+)", path.stem)
    name, size = (match.group(1), f" --size {match.group(2)}") if match else (path.stem, "")
    return f"rebuild it with: offrl datasets build {name}{size} --force"


def _read(handle: h5py.File, key: str, path: Path) -> np.ndarray | None:
    if key not in handle:
        return None
    node = handle[key]
    if not isinstance(node, h5py.Dataset):
        raise DatasetError(f"{path}: key '{key}' is a group, expected an array")
    return node[()]


def _read_metadata(handle: h5py.File) -> dict[str, Any]:
    if "metadata" not in handle or not isinstance(handle["metadata"], h5py.Group):
        return {}
    out: dict[str, Any] = {}
    for key, node in handle["metadata"].items():
        if isinstance(node, h5py.Dataset) and node.shape == ():
            value = node[()]
            out[key] = value.decode() if isinstance(value, bytes) else value.item() if hasattr(value, "item") else value
    return out


def _to_transitions(raw: dict[str, np.ndarray | None], path: Path, name: str, meta: dict[str, Any],
                    episode_limit: int | None) -> OfflineData:
    n = check_columns(raw, str(path))
    info = _info_from_metadata(meta, path, name)
    if info.extra.get("dataset_form") == "single-task" and raw["successes"] is None:
        recipe = info.extra.get("recipe", {})
        rebuild = (_rebuild_hint(path) if _in_cache(path) else "rebuild it with: offrl datasets build "
                   f"{recipe.get('name', path.stem)} --size {recipe.get('size', n)} --force")
        raise DatasetError(f"{path}: a single-task file in offrl's old layout: its 'terminals' hold the task's "
                           f"successes, which cut an episode at every success (expected a 'successes' key); {rebuild}")
    observations = _as_matrix(raw["observations"], "observations", path)
    actions = _as_matrix(raw["actions"], "actions", path)
    rewards = np.asarray(raw["rewards"], dtype=np.float32).reshape(n, -1)
    if rewards.shape[1] != 1:
        raise DatasetError(f"{path}: key 'rewards' has shape {raw['rewards'].shape}, expected (N,) or (N, 1)")
    rewards = rewards[:, 0]
    terminals = _as_flags(raw["terminals"], "terminals", path)
    successes = np.zeros(n, bool) if raw["successes"] is None else _as_flags(raw["successes"], "successes", path)
    if raw["timeouts"] is not None:
        timeouts = _as_flags(raw["timeouts"], "timeouts", path)
    else:
        timeouts = np.zeros(n, bool) if episode_limit is None else limit_ends(terminals, episode_limit)

    if raw["next_observations"] is not None:
        next_observations = _as_matrix(raw["next_observations"], "next_observations", path)
        episode_ends = terminals | timeouts
        episode_ends[-1] = True
        keep = np.ones(n, bool)
    else:
        # qlearning_dataset convention: s'_i = s_{i+1}; rows at a timeout have no successor and are
        # dropped, and so is the last row unless it terminates. A terminal row's successor is unknown
        # (masked in TD targets), so it keeps its own observation as a placeholder.
        next_observations = np.empty_like(observations)
        next_observations[:-1] = observations[1:]
        next_observations[terminals] = observations[terminals]
        next_observations[-1] = observations[-1]
        keep = ~timeouts
        keep[-1] = terminals[-1]
        successor_dropped = np.append(timeouts[1:], True)
        episode_ends = terminals | successor_dropped
        if not keep.any():
            raise DatasetError(f"{path}: no transition left after dropping timeout rows")

    info.rows_read = n
    if raw["timeouts"] is None:  # D4RL v0: the loaded line says how its episodes were split
        info.extra["episode_limit"] = episode_limit
    if raw["next_observations"] is None:
        last_open = int(not terminals[-1] and not timeouts[-1])
        info.dropped = {"timeout rows without a next observation": int(timeouts.sum()),
                        "last row without a next observation": last_open}
    return OfflineData(
        observations=observations[keep],
        actions=actions[keep],
        rewards=rewards[keep],
        next_observations=next_observations[keep],
        terminals=(terminals | successes)[keep],
        episode_ends=episode_ends[keep],
        info=info,
    )


def limit_ends(terminals: np.ndarray, limit: int) -> np.ndarray:
    """Time-limit ends of a file without timeouts: the row where an episode (from the start or a terminal)
    reaches ``limit`` steps."""
    ends = np.zeros(len(terminals), bool)
    step = 0
    for i, terminal in enumerate(terminals):
        step += 1
        if terminal:
            step = 0
        elif step == limit:
            ends[i], step = True, 0
    return ends


def d4rl_flags(terminals: np.ndarray, episode_ends: np.ndarray) -> dict[str, np.ndarray]:
    """The flag keys of a D4RL-layout file for transitions with ``terminals`` (TD targets stop) and
    ``episode_ends`` (``OfflineData``'s two flags): ``terminals`` that end an episode, ``timeouts`` (the other
    episode ends) and ``successes`` (terminals inside an episode); reading the file gives both flags back."""
    terminals, episode_ends = terminals.astype(bool), episode_ends.astype(bool)
    return {"terminals": terminals & episode_ends, "timeouts": episode_ends & ~terminals,
            "successes": terminals & ~episode_ends}


def _as_matrix(array: np.ndarray, key: str, path: Path) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DatasetError(f"{path}: key '{key}' has shape {array.shape}, expected (N, d)")
    return array.astype(np.float32, copy=False)


def _as_flags(array: np.ndarray, key: str, path: Path) -> np.ndarray:
    if array.ndim > 1 and np.prod(array.shape[1:]) != 1:
        raise DatasetError(f"{path}: key '{key}' has shape {array.shape}, expected (N,) or (N, 1)")
    return array.reshape(len(array)).astype(bool)


def _info_from_metadata(meta: dict[str, Any], path: Path, name: str) -> DatasetInfo:
    env_id = meta.get("env_id")
    ref_min, ref_max = meta.get("ref_min_score"), meta.get("ref_max_score")
    family = re.match(r"^(hopper|halfcheetah|walker2d|ant)[-_]", name)
    if family and ref_min is None and ref_max is None and "recipe" not in meta:
        # An original D4RL file: its reference scores come from d4rl/infos.py, not from the file.
        ref_min, ref_max = D4RL_REFERENCE_SCORES[family.group(1)]
        env_id = env_id or D4RL_EVAL_ENVS[family.group(1)]
    structured = ("recipe", "env_kwargs", "observation_spec", "success", "oracle_success")  # stored as JSON strings
    extra = {key: json.loads(value) if key in structured and isinstance(value, str) else value
             for key, value in meta.items() if key not in ("env_id", "ref_min_score", "ref_max_score")}
    spec = extra.pop("observation_spec", None)
    return DatasetInfo(
        name=name,
        source="hdf5",
        location=str(path),
        env_id=env_id,
        ref_min_score=None if ref_min is None else float(ref_min),
        ref_max_score=None if ref_max is None else float(ref_max),
        env_kwargs=extra.pop("env_kwargs", None) or {},
        obs_spec=None if spec is None else ObservationSpec.from_dict(spec),
        extra=extra,
    )


def write_d4rl_hdf5(
    path: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    metadata: dict[str, Any] | None = None,
    infos: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a D4RL-layout file atomically (temp file, then rename). ``arrays`` holds
    observations, actions, rewards, terminals, timeouts and optionally successes and next_observations."""
    path = Path(path)
    with checkpoint.atomic_path(path, "dataset") as tmp, h5py.File(tmp, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value, compression="gzip", compression_opts=1)
        for key, value in (infos or {}).items():
            handle.create_dataset(f"infos/{key}", data=value, compression="gzip", compression_opts=1)
        for key, value in (metadata or {}).items():
            handle[f"metadata/{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return path
