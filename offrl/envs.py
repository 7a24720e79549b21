"""Environments: gymnasium vector envs with actions rescaled to [-1, 1], and policy evaluation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from offrl.errors import ConfigError


def make_vec_env(env_id: str, num_envs: int, env_kwargs: dict[str, Any] | None = None) -> gym.vector.VectorEnv:
    """A synchronous vector env (AsyncVectorEnv is slower on 2 cores) whose action space is [-1, 1]."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as err:
        raise ConfigError(f"environment '{env_id}' is not registered with gymnasium ({err})") from None
    probe = gym.make(spec, **(env_kwargs or {}))
    space = probe.action_space
    probe.close()
    if not isinstance(space, gym.spaces.Box):
        raise ConfigError(f"environment '{env_id}' has action space {space}; offrl needs a continuous Box")
    wrappers = []
    if not (np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0)):
        wrappers.append(lambda env: gym.wrappers.RescaleAction(env, -1.0, 1.0))
    return gym.make_vec(spec, num_envs=num_envs, vectorization_mode="sync", wrappers=wrappers, **(env_kwargs or {}))


@dataclass
class EvalResult:
    returns: np.ndarray  # (episodes,)
    lengths: np.ndarray

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
    (num_envs, obs_dim) array to (num_envs, act_dim) actions in [-1, 1].
    """
    n = envs.num_envs
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    # sub-env k plays episodes k, k + n, k + 2n, ...
    current = np.arange(n)
    active = current < episodes
    obs, _ = envs.reset(seed=[seed + int(i) for i in current])
    while active.any():
        actions = policy(obs)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        returns[current[active]] += rewards[active]
        lengths[current[active]] += 1
        finished = (terminated | truncated) & active
        if finished.any():
            # Reset finished sub-envs explicitly (rather than by NEXT_STEP autoreset) so that each
            # episode gets its own seed; sub-envs with no episode left idle, uncounted.
            current[finished] += n
            active = current < episodes
            restart = finished & active
            if restart.any():
                obs, _ = envs.reset(seed=[seed + int(i) for i in current], options={"reset_mask": restart})
    return EvalResult(returns, lengths)
