"""Datasets that need no download: generated on first use into a cache directory from a recipe.

``idp-mixed`` (the default dataset): InvertedDoublePendulum-v5 driven by an LQR controller derived
from MuJoCo's own linearisation of the upright pose, with Gaussian action noise whose std is drawn
per episode from U(0.1, 0.4). Low-noise episodes balance for the full 1000 steps, high-noise ones
fall within tens of steps, so the data mixes expert and poor behaviour. Reference returns: uniform
random actions (100 episodes) and the noiseless controller (10 episodes), measured at build time.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import scipy.linalg

from offrl.core.errors import DatasetError
from offrl.data.cache import cache_file
from offrl.data.d4rl import write_d4rl_hdf5
from offrl.envs import evaluate, make_vec_env
from offrl.generation import ogbench_gen, ogbench_maze, pointmaze
from offrl.generation.collect import UniformRandomPolicy, collect
from offrl.generation.generate import QUALITIES, BehaviourCard, available_families, build_generated, split_name


class NoisyLQR:
    """u = clip(-K x + sigma_episode * eps, -1, 1) for InvertedDoublePendulum-v5.

    x = (cart position, hinge angles, velocities) is read back from the observation
    [x, sin q1, sin q2, cos q1, cos q2, v, w1, w2, constraint force].
    """

    def __init__(self, gain: np.ndarray, noise_range: tuple[float, float], num_envs: int, seed: int) -> None:
        self.gain = gain  # (1, 6)
        self.noise_range = noise_range
        self.rng = np.random.default_rng(seed)
        self.sigma = np.zeros(num_envs)

    @classmethod
    def from_env(cls, env_id: str, noise_range: tuple[float, float], num_envs: int, seed: int) -> NoisyLQR:
        return cls(lqr_gain(env_id), noise_range, num_envs, seed)

    def reset(self, mask: np.ndarray) -> None:
        self.sigma[mask] = self.rng.uniform(*self.noise_range, size=int(mask.sum()))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        state = np.stack(
            [obs[:, 0], np.arctan2(obs[:, 1], obs[:, 3]), np.arctan2(obs[:, 2], obs[:, 4]), *obs[:, 5:8].T], axis=1
        )
        action = -state @ self.gain.T + self.sigma[:, None] * self.rng.standard_normal((len(obs), 1))
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def lqr_gain(env_id: str) -> np.ndarray:
    """Discrete-time LQR gain around the upright pose, from a central finite-difference
    linearisation of one environment step (frame_skip physics steps)."""
    env = gym.make(env_id).unwrapped
    model, data = env.model, env.data
    nq, nv, nu = model.nq, model.nv, model.nu

    def step(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:], data.ctrl[:] = x[:nq], x[nq:], u
        mujoco.mj_step(model, data, nstep=env.frame_skip)
        return np.concatenate([data.qpos, data.qvel])

    eps, x0, u0 = 1e-5, np.zeros(nq + nv), np.zeros(nu)
    a = np.stack([(step(x0 + d, u0) - step(x0 - d, u0)) / (2 * eps) for d in np.eye(nq + nv) * eps], axis=1)
    b = np.stack([(step(x0, u0 + d) - step(x0, u0 - d)) / (2 * eps) for d in np.eye(nu) * eps], axis=1)
    env.close()
    q, r = np.diag([1.0, 50.0, 50.0, 1.0, 5.0, 5.0]), np.eye(nu)
    p = scipy.linalg.solve_discrete_are(a, b, q, r)
    return np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)


@dataclass(frozen=True)
class Recipe:
    name: str
    env_id: str
    description: str
    size: int
    seed: int
    noise_range: tuple[float, float]
    num_envs: int = 8
    random_episodes: int = 100
    expert_episodes: int = 10

    def build(self, path: Path, size: int | None = None) -> Path:
        size = size or self.size
        behaviour = NoisyLQR.from_env(self.env_id, self.noise_range, self.num_envs, self.seed)
        arrays = collect(behaviour, self.env_id, size, self.seed, self.num_envs, desc=f"build {self.name}")
        envs = make_vec_env(self.env_id, 10)
        act_dim = envs.single_action_space.shape[0]
        random_policy = UniformRandomPolicy(act_dim, self.seed + 1)
        ref_min = evaluate(random_policy, envs, self.random_episodes, seed=self.seed + 10_000).return_mean
        expert = NoisyLQR(behaviour.gain, (0.0, 0.0), 10, self.seed)
        expert.reset(np.ones(10, bool))
        ref_max = evaluate(expert, envs, self.expert_episodes, seed=self.seed + 20_000).return_mean
        envs.close()
        metadata = {
            "env_id": self.env_id,
            "ref_min_score": ref_min,
            "ref_max_score": ref_max,
            "ref_min_episodes": self.random_episodes,
            "ref_max_episodes": self.expert_episodes,
            "algorithm": "noisy LQR",
            "recipe": {**asdict(self), "size": size},
        }
        return write_d4rl_hdf5(path, arrays, metadata)


RECIPES: dict[str, Recipe | ogbench_gen.OGBenchRecipe | ogbench_maze.NavigateRecipe | pointmaze.MazeRecipe] = {
    "idp-mixed": Recipe(
        name="idp-mixed",
        env_id="InvertedDoublePendulum-v5",
        description="LQR with per-episode Gaussian action noise, std ~ U(0.1, 0.4)",
        size=100_000,
        seed=0,
        noise_range=(0.1, 0.4),
    ),
    # OGBench manipulation datasets (cube-single-play, ..., puzzle-3x3-noisy-task5): offrl/generation/ogbench_gen.py
    **ogbench_gen.RECIPES,
    # OGBench PointMaze (pointmaze-medium-navigate, ..., pointmaze-teleport-stitch): offrl/generation/ogbench_maze.py
    **ogbench_maze.RECIPES,
    # PointMaze (gymnasium-robotics, goal-conditioned): offrl/generation/pointmaze.py
    **pointmaze.maze_recipes(),
}


def dataset_names() -> list[str]:
    """Every dataset offrl can build: the recipes here (with the OGBench manipulation sets) and the
    D4RL-protocol generated ones."""
    return [*RECIPES, *(f"{family}-{quality}" for family in available_families() for quality in QUALITIES)]


def cached_path(name: str, size: int | None = None) -> Path:
    """The cache file of ``name``'s build of ``size`` transitions (a recipe's full size is its plain name)."""
    return cache_file(name, None if name in RECIPES and size == RECIPES[name].size else size)


@contextlib.contextmanager
def build_lock(path: Path, log: Callable[[str], None] = print) -> Iterator[None]:
    """One builder per dataset file: an exclusive flock on ``<cache>/.locks/<file>.lock``, held while ``path`` is
    built. Two jobs of a sweep that both find the dataset missing (``hydra/launcher=local``, two lanes of an
    experiment script) would otherwise generate it twice and write the same file; the second waits, then reads the
    first one's file."""
    lock = path.parent / ".locks" / f"{path.name}.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a")
    except OSError as err:
        raise DatasetError(f"{lock}: cannot write the dataset cache ({err.strerror or err}); set OFFRL_DATA_DIR to "
                           "a writable directory") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"offrl: waiting for another process that is building {path.name}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def ensure_recipe_dataset(name: str, size: int | None = None, log: Callable[[str], None] = print,
                          **build_options) -> Path:
    """Path of the cached dataset ``name`` (a recipe or a generated D4RL-protocol name), building it
    first if it is not there. ``build_options`` go to the generator (workers, from_run)."""
    if size is not None and size <= 0:
        raise DatasetError(f"dataset '{name}': size={size} must be a positive number of transitions")

    if name not in RECIPES and ogbench_gen.is_ogbench_name(name):
        ogbench_gen.split_name(name)  # raises: an unknown task, family or kind, with suggestions
    if name not in RECIPES:
        try:
            family, _ = split_name(name)
        except DatasetError:
            raise DatasetError(f"no dataset '{name}': expected a recipe ({sorted(RECIPES)}) or a generated "
                               "D4RL-protocol name like hopper-medium (offrl datasets list)") from None
        BehaviourCard.load(family)  # a clear error where no behaviour policies are shipped
    ogbench = isinstance(RECIPES.get(name), (ogbench_gen.OGBenchRecipe, ogbench_maze.NavigateRecipe))
    if ogbench:
        ogbench_gen.ensure_registered()  # its gymnasium ids: the evaluation env of the dataset
    path = cached_path(name, size)
    if path.exists():
        return path
    with build_lock(path, log):
        if path.exists():  # built by another process while this one waited
            return path
        log(f"offrl: building dataset '{name}' into {path}")
        if ogbench:
            options = {key: value for key, value in build_options.items() if key == "workers"}
            return RECIPES[name].build(path, size, log=log, **options)
        if name in RECIPES:
            return RECIPES[name].build(path, size)
        return build_generated(name, path, size, log=log, **build_options)
