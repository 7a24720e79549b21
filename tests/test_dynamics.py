"""The dynamics-error tool: real transitions replay with (near) zero error, perturbed ones do not."""

import numpy as np
import pytest

from offrl.core.errors import OffrlError
from offrl.envs import make_vec_env
from offrl.tools.dynamics import dynamics_error, replay


def _hopper_transitions(n=200, seed=0):
    envs = make_vec_env("Hopper-v5", 1)
    obs, _ = envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rows = {"obs": [], "actions": [], "rewards": [], "next_obs": []}
    while len(rows["obs"]) < n:
        action = rng.uniform(-1, 1, (1, 3)).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = envs.step(action)
        if terminated[0] or truncated[0]:
            obs, _ = envs.reset(seed=seed + len(rows["obs"]))
            continue
        for key, value in zip(rows, (obs[0], action[0], reward[0], next_obs[0])):
            rows[key].append(value)
        obs = next_obs
    return {k: np.asarray(v) for k, v in rows.items()}


def test_real_transitions_replay_exactly():
    t = _hopper_transitions()
    error = dynamics_error("Hopper-v5", t["obs"], t["actions"], t["rewards"], t["next_obs"])
    assert error["next_obs_mse"] < 1e-8 and error["reward_abs_error"] < 1e-6, error


def test_perturbed_transitions_show_their_error():
    t = _hopper_transitions()
    noisy = t["next_obs"] + 0.1
    error = dynamics_error("Hopper-v5", t["obs"], t["actions"], t["rewards"] + 1.0, noisy)
    assert error["next_obs_mse"] == pytest.approx(0.01, rel=1e-3) and error["reward_abs_error"] == pytest.approx(1.0)


def test_tasks_without_a_simulator_state_in_the_observation_are_refused():
    with pytest.raises(OffrlError, match="qpos"):
        replay("Pendulum-v1", np.zeros((1, 3)), np.zeros((1, 1)))
    with pytest.raises(OffrlError, match="expected qpos\\[1:\\] \\+ qvel = 11"):
        replay("Hopper-v5", np.zeros((1, 9)), np.zeros((1, 3)))
