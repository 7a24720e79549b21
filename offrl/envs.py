"""Environments: gymnasium vector envs with actions rescaled to [-1, 1], and policy evaluation."""

from __future__ import annotations

import contextlib
import difflib
import io
import pickle
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from offrl.core.errors import ConfigError
from offrl.core.spec import ObservationSpec


# ---------------------------------------------------------------------- observation wrappers
class FlattenBySpec(gym.ObservationWrapper):
    """A dict-observation env as a Box env, flattened in ``spec`` order (the layout the data uses)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.obs_spec = ObservationSpec.from_space(env.observation_space)
        subspaces = env.observation_space.spaces.values()
        low = np.concatenate([np.broadcast_to(s.low, s.shape).ravel() for s in subspaces])
        high = np.concatenate([np.broadcast_to(s.high, s.shape).ravel() for s in subspaces])
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.obs_spec.flatten({k: np.asarray(v)[None] for k, v in observation.items()})[0]


class GoalFromReset(gym.Wrapper):
    """An env that hands its goal over in ``reset``'s info (OGBench's goal-conditioned tasks) as a dict
    observation {desired_goal, observation}. The evaluation task is picked from the reset seed,
    ``task_id = seed % num_tasks + 1``, so seeded evaluation episodes cycle through every task."""

    def __init__(self, env: gym.Env, num_tasks: int = 5) -> None:
        super().__init__(env)
        self.num_tasks, self.goal = num_tasks, None
        self.observation_space = gym.spaces.Dict({"observation": env.observation_space,
                                                  "desired_goal": env.observation_space})

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = dict(options or {})
        options.setdefault("task_id", (seed or 0) % self.num_tasks + 1)
        obs, info = self.env.reset(seed=seed, options=options)
        self.goal = np.asarray(info["goal"])
        return {"observation": obs, "desired_goal": self.goal.copy()}, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return {"observation": obs, "desired_goal": self.goal.copy()}, reward, terminated, truncated, info


# glfw warns on import where no X display exists (servers, containers, vector-env workers that import
# gymnasium-robotics); offscreen rendering does not use it (MUJOCO_GL=egl|osmesa)
warnings.filterwarnings("ignore", message=r".*The DISPLAY environment variable is missing")

def register_extra_envs() -> None:
    """Register the env packages offrl knows beyond gymnasium's own (gymnasium-robotics: PointMaze,
    AntMaze, ...; OGBench: manipulation and mazes), where installed. Imported on first need: they are
    slow to import and print notices."""
    for name in ("gymnasium_robotics", "ogbench"):
        try:
            quiet = io.StringIO()
            with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                warnings.simplefilter("ignore")
                module = __import__(name)
                if name == "gymnasium_robotics":
                    gym.register_envs(module)
        except ImportError:
            continue
    if "ogbench" in sys.modules and GOAL_ENV_PREFIX + "cube-single-v0" not in gym.registry:
        for env_id in ogbench_goal_env_ids():  # OGBench goal-conditioned tasks, goal in the obs
            gym.register(GOAL_ENV_PREFIX + env_id, entry_point=_goal_env, kwargs={"env_id": env_id})


GOAL_ENV_PREFIX = "offrl/goal-"
# OGBench's goal-conditioned environments offrl trains on (dataset generation builds its datasets from them)
OGBENCH_MANIPULATION = {"cube-single": "cube-single-v0", "cube-double": "cube-double-v0", "scene": "scene-v0",
                        "puzzle-3x3": "puzzle-3x3-v0"}
OGBENCH_MAZES = ("medium", "large", "giant", "teleport")


def ogbench_goal_env_ids() -> list[str]:
    return [*OGBENCH_MANIPULATION.values(), *(f"pointmaze-{maze}-v0" for maze in OGBENCH_MAZES)]


def _goal_env(env_id: str, **kwargs) -> gym.Env:
    return GoalFromReset(gym.make(env_id, **kwargs))


def env_spec(env_id: str, where: str = "env") -> gym.envs.registration.EnvSpec:
    """The gymnasium spec of ``env_id``; an unknown id is a ConfigError suggesting the closest ids."""
    if env_id not in gym.registry:
        register_extra_envs()
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"{where}='{env_id}' is not a registered gymnasium environment{hint}") from None


def env_spaces(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[gym.Space, gym.Space]:
    """Observation space (flattened by the observation spec for dict observations) and action space of
    ``env_id`` (made once, then closed)."""
    probe = gym.make(env_spec(env_id), **(env_kwargs or {}))
    if isinstance(probe.observation_space, gym.spaces.Dict):
        probe = FlattenBySpec(probe)
    spaces = probe.observation_space, probe.action_space
    probe.close()
    return spaces


def observation_spec(env_id: str, env_kwargs: dict[str, Any] | None = None) -> ObservationSpec:
    probe = gym.make(env_spec(env_id), **(env_kwargs or {}))
    spec = ObservationSpec.from_space(probe.observation_space)
    probe.close()
    return spec


def make_vec_env(env_id: str, num_envs: int, env_kwargs: dict[str, Any] | None = None) -> gym.vector.VectorEnv:
    """A synchronous vector env (AsyncVectorEnv is slower on 2 cores) whose action space is [-1, 1]."""
    spec = env_spec(env_id)
    probe = gym.make(spec, **(env_kwargs or {}))
    space, dict_obs = probe.action_space, isinstance(probe.observation_space, gym.spaces.Dict)
    probe.close()
    if not isinstance(space, gym.spaces.Box):
        raise ConfigError(f"environment '{env_id}' has action space {space}; offrl needs a continuous Box")
    wrappers = [FlattenBySpec] if dict_obs else []  # dict observations: flat, in the observation spec's order
    if not (np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0)):
        ones = np.ones(space.shape, space.dtype)  # bounds of the space's dtype: no precision warning from gymnasium
        wrappers.append(lambda env: gym.wrappers.RescaleAction(env, -ones, ones))
    return gym.make_vec(spec, num_envs=num_envs, vectorization_mode="sync", wrappers=wrappers, **(env_kwargs or {}))


@dataclass
class EvalResult:
    returns: np.ndarray  # (episodes,)
    lengths: np.ndarray
    successes: np.ndarray | None = None  # (episodes,) bool, where the env reports info["success"]

    @property
    def success_rate(self) -> float | None:
        """Share of episodes whose env reported success at any step (None: the env reports none)."""
        return None if self.successes is None else float(self.successes.mean())

    @property
    def return_mean(self) -> float:
        return float(self.returns.mean())

    @property
    def return_std(self) -> float:
        return float(self.returns.std())


def evaluate(
    policy: Callable[[np.ndarray], np.ndarray],
    envs: gym.vector.VectorEnv,
    episodes: int,
    seed: int,
) -> EvalResult:
    """Run ``episodes`` episodes on ``envs`` (batched policy calls), seeding episode i with seed + i.

    Each sub-env plays episodes one after another until every episode is done; ``policy`` maps a
    (num_envs, obs_dim) array to (num_envs, act_dim) actions in [-1, 1]. Where the env reports
    ``info["success"]``, an episode succeeds if any of its steps does.
    """
    n = envs.num_envs
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    successes, reports_success = np.zeros(episodes, bool), False
    # sub-env k plays episodes k, k + n, k + 2n, ...
    current = np.arange(n)
    active = current < episodes
    obs, _ = envs.reset(seed=[seed + int(i) for i in current])
    while active.any():
        actions = policy(obs)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        returns[current[active]] += rewards[active]
        lengths[current[active]] += 1
        if "success" in infos:  # OGBench, gymnasium-robotics: success at any step counts for the episode
            reports_success = True
            hit = np.asarray(infos["success"], dtype=bool) & infos.get("_success", np.ones(n, bool)) & active
            successes[current[hit]] = True
        finished = (terminated | truncated) & active
        if finished.any():
            # Reset finished sub-envs explicitly (rather than by NEXT_STEP autoreset) so that each
            # episode gets its own seed; sub-envs with no episode left idle, uncounted.
            current[finished] += n
            active = current < episodes
            restart = finished & active
            if restart.any():
                obs, _ = envs.reset(seed=[seed + int(i) for i in current], options={"reset_mask": restart})
    return EvalResult(returns, lengths, successes if reports_success else None)


# ---------------------------------------------------------------------- exact environment state
# Attributes that are simulator handles or sub-environments: never pickled as attributes.
_NOT_STATE = {"env", "envs", "env_fns", "model", "data", "mujoco_renderer", "renderer", "viewer", "spec"}


def vec_env_state(envs: gym.vector.SyncVectorEnv) -> dict[str, Any]:
    """Everything a synchronous vector env needs to continue bit-exactly: the vector env's own
    attributes (autoreset flags, last observations), and per sub-env every picklable attribute of
    each wrapper (elapsed steps, reset flags) and of the base env (its ``np_random``, classic-control
    ``state``), plus a full copy of a MuJoCo env's ``MjData`` (integration state, warm start and the
    derived quantities some envs read before stepping, e.g. body positions)."""
    return {"vector": _attributes(envs), "envs": [_env_state(env) for env in envs.envs]}


def set_vec_env_state(envs: gym.vector.SyncVectorEnv, state: dict[str, Any]) -> None:
    if len(state["envs"]) != envs.num_envs:
        raise ConfigError(f"saved environment state holds {len(state['envs'])} envs, this run has {envs.num_envs}")
    _set_attributes(envs, state["vector"])
    for env, saved in zip(envs.envs, state["envs"]):
        for layer, attributes in zip(_layers(env), saved["layers"]):
            _set_attributes(layer, attributes)
        if saved["mjdata"] is not None:
            import mujoco  # deferred: see _env_state

            base = env.unwrapped
            mujoco.mj_copyData(base.data, base.model, pickle.loads(zlib.decompress(saved["mjdata"])))


def _env_state(env: gym.Env) -> dict[str, Any]:
    # mujoco is imported where used: it fixes its OpenGL backend from $MUJOCO_GL when first imported, which
    # offrl eval --video chooses before that (offrl.tools.evaluation.import_mujoco)
    import mujoco

    data = getattr(env.unwrapped, "data", None)
    mjdata = zlib.compress(pickle.dumps(data), 1) if isinstance(data, mujoco.MjData) else None
    return {"layers": [_attributes(layer) for layer in _layers(env)], "mjdata": mjdata}


def _layers(env: gym.Env) -> Iterator[gym.Env]:
    """The wrapper chain from the outermost wrapper down to the base env."""
    while True:
        yield env
        if not hasattr(env, "env"):
            return
        env = env.env


def _attributes(obj: Any) -> dict[str, bytes]:
    out = {}
    for key, value in vars(obj).items():
        if key in _NOT_STATE or callable(value):
            continue
        try:
            out[key] = pickle.dumps(value)
        except (pickle.PicklingError, TypeError, AttributeError):
            continue  # handles (file objects, locks): configuration, not state
    return out


def _set_attributes(obj: Any, attributes: dict[str, bytes]) -> None:
    for key, blob in attributes.items():
        setattr(obj, key, pickle.loads(blob))
