"""Dynamics error of synthetic transitions, measured with the simulator (beyond PGD's own tooling).

For gymnasium's MuJoCo locomotion tasks whose observation is (qpos[1:], qvel) (Hopper, Walker2d,
HalfCheetah: the x position does not affect the dynamics), each synthetic transition (s, a, r, s') is
replayed: the simulator is set to s (x = 0), the action is applied, and the simulator's next observation
and reward are compared with s' and r. This makes PGD's central trade-off measurable: guidance raises
the target policy's likelihood of the synthetic actions; how much does it cost in dynamics accuracy?

    offrl diffusion dynamics <model dir> --agent-run <run dir> [--coef 0 1 10] [--num N] [--out DIR]
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from offrl.core.errors import OffrlError

LOCOMOTION = ("Hopper", "Walker2d", "HalfCheetah")


def replay(env_id: str, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's next observations and rewards for (s, a) pairs of a locomotion task; actions in
    [-1, 1] are mapped to the env's bounds."""
    if not env_id.startswith(LOCOMOTION):
        raise OffrlError(f"env '{env_id}': dynamics replay needs a task whose observation is (qpos[1:], qvel) "
                         f"({', '.join(LOCOMOTION)})")
    env = gym.make(env_id).unwrapped
    nq, nv = env.model.nq, env.model.nv
    if obs.shape[1] != nq - 1 + nv:
        raise OffrlError(f"env '{env_id}': observations have {obs.shape[1]} values, expected qpos[1:] + qvel = "
                         f"{nq - 1 + nv}")
    low, high = env.action_space.low, env.action_space.high
    env.reset(seed=0)
    next_obs, rewards = np.empty_like(obs), np.empty(len(obs))
    for i, (s, a) in enumerate(zip(obs.astype(np.float64), actions.astype(np.float64))):
        env.set_state(np.concatenate([[0.0], s[: nq - 1]]), s[nq - 1:])
        o, r, *_ = env.step(low + (np.clip(a, -1, 1) + 1.0) * 0.5 * (high - low))
        next_obs[i], rewards[i] = o, r
    env.close()
    return next_obs, rewards


def dynamics_error(env_id: str, obs, actions, rewards, next_obs) -> dict[str, float]:
    """Mean squared next-observation error (raw units, averaged over dimensions), its value relative to
    the variance of the observations, and the mean absolute reward error."""
    obs, actions, rewards, next_obs = (np.asarray(x, dtype=np.float64) for x in (obs, actions, rewards, next_obs))
    sim_next, sim_rewards = replay(env_id, obs, actions)
    state_mse = ((sim_next - next_obs) ** 2).mean(axis=1)
    scale = obs.var(axis=0).mean() + 1e-12
    return {"transitions": len(obs), "next_obs_mse": float(state_mse.mean()),
            "next_obs_mse_relative": float(state_mse.mean() / scale),
            "next_obs_mse_median": float(np.median(state_mse)),
            "reward_abs_error": float(np.abs(sim_rewards - rewards).mean())}
