"""Success rates are read from the env's info["success"], per episode, next to returns."""

import gymnasium as gym
import numpy as np

from offrl.envs import evaluate, make_vec_env


class ReachEnv(gym.Env):
    """1-D point: x += a; success once x >= 1 (reported in info, as OGBench and gymnasium-robotics do)."""

    observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += float(action[0]) * 0.5
        return np.array([self.x], np.float32), -1.0, False, False, {"success": self.x >= 1.0}


gym.register("offrl-test/Reach-v0", entry_point=ReachEnv, max_episode_steps=10)


def test_success_rate_counts_episodes_that_succeed_at_any_step():
    envs = make_vec_env("offrl-test/Reach-v0", 2)
    forward = evaluate(lambda obs: np.ones((len(obs), 1), np.float32), envs, episodes=5, seed=0)
    assert forward.success_rate == 1.0 and forward.successes.shape == (5,)
    still = evaluate(lambda obs: np.zeros((len(obs), 1), np.float32), envs, episodes=3, seed=0)
    assert still.success_rate == 0.0


def test_success_rate_is_none_where_the_env_reports_none():
    envs = make_vec_env("Pendulum-v1", 2)
    result = evaluate(lambda obs: np.zeros((len(obs), 1), np.float32), envs, episodes=2, seed=0)
    assert result.success_rate is None
