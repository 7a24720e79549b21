"""Roll out a behaviour policy on gymnasium vector envs into D4RL-layout arrays.

Episodes are written contiguously in the order they finish; episode i is reset with seed + i, so a
collection is deterministic given the policy, the seed and ``num_envs``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from multiprocessing.pool import Pool
from typing import Any, Protocol

import numpy as np

from offrl.core.progress import progress
from offrl.envs import make_vec_env


def worker_pool(processes: int) -> Pool:
    """A pool of spawned processes for a dataset build. Its workers leave Ctrl-C to the parent (which stops them as
    it unwinds) and exit as soon as the parent is gone (killed), instead of finishing their share for nobody."""
    return mp.get_context("spawn").Pool(processes, initializer=_follow_parent, initargs=(os.getpid(),))


def _follow_parent(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class BehaviourPolicy(Protocol):
    def reset(self, mask: np.ndarray) -> None:
        """Sub-envs in ``mask`` start a new episode (e.g. draw a new noise level)."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(num_envs, obs_dim) observations -> (num_envs, act_dim) actions in [-1, 1]."""


def collect(
    policy: BehaviourPolicy,
    env_id: str,
    num_transitions: int,
    seed: int,
    num_envs: int = 8,
    env_kwargs: dict[str, Any] | None = None,
    desc: str = "collect",
) -> dict[str, np.ndarray]:
    """Exactly ``num_transitions`` transitions; the episode cut by the size limit ends in a timeout."""
    envs = make_vec_env(env_id, num_envs, env_kwargs)
    episode_counter = num_envs
    obs, _ = envs.reset(seed=[seed + i for i in range(num_envs)])
    policy.reset(np.ones(num_envs, bool))
    keys = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    running: list[dict[str, list]] = [{k: [] for k in keys} for _ in range(num_envs)]
    finished: list[dict[str, np.ndarray]] = []
    total = 0
    with progress(num_transitions, desc, "step") as bar:
        while total < num_transitions:
            actions = np.asarray(policy(obs), dtype=np.float32)
            next_obs, rewards, terminated, truncated, _ = envs.step(actions)
            for k in range(num_envs):
                episode = running[k]
                for key, value in zip(keys, (obs[k], actions[k], rewards[k], next_obs[k], terminated[k], truncated[k])):
                    episode[key].append(value)
            done = terminated | truncated
            obs = next_obs
            if done.any():
                for k in np.flatnonzero(done):
                    episode = {key: np.asarray(values) for key, values in running[k].items()}
                    finished.append(episode)
                    bar.update(min(len(episode["rewards"]), num_transitions - total))  # the last one is cut
                    total += len(episode["rewards"])
                    running[k] = {key: [] for key in keys}
                seeds = []
                for k in range(num_envs):
                    seeds.append(seed + episode_counter if done[k] else None)
                    episode_counter += int(done[k])
                obs, _ = envs.reset(seed=seeds, options={"reset_mask": done})
                policy.reset(done)
    envs.close()
    out = {key: np.concatenate([episode[key] for episode in finished])[:num_transitions] for key in keys}
    out["timeouts"][-1] = not out["terminals"][-1]
    out["observations"] = out["observations"].astype(np.float32)
    out["next_observations"] = out["next_observations"].astype(np.float32)
    out["rewards"] = out["rewards"].astype(np.float32)
    return out


class UniformRandomPolicy:
    """Uniform actions in [-1, 1] (the D4RL / Minari reference-min policy)."""

    def __init__(self, act_dim: int, seed: int) -> None:
        self.act_dim = act_dim
        self.rng = np.random.default_rng(seed)

    def reset(self, mask: np.ndarray) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=(len(obs), self.act_dim)).astype(np.float32)
