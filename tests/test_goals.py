"""Observation specs, dict-observation envs, PointMaze generation and hindsight goal relabelling."""

import gymnasium_robotics  # noqa: E402,F401  (a dependency: a missing install must fail, not skip)
import numpy as np
import pytest
import torch

from offrl.core.errors import DatasetError
from offrl.core.spec import ObservationSpec
from offrl.data.d4rl import read_d4rl_hdf5
from offrl.data.goals import GoalRelabel, GoalRelabelConfig, wants_relabelling
from offrl.data.sources import DatasetConfig, load_dataset
from offrl.data.store import ObsNormalizer, TransitionStore
from offrl.envs import make_vec_env, observation_spec
from offrl.generation.pointmaze import build_pointmaze, maze_recipes


@pytest.fixture(scope="module")
def maze_file(tmp_path_factory):
    return build_pointmaze(maze_recipes()["pointmaze-umaze"], tmp_path_factory.mktemp("maze") / "umaze.hdf5", 3000)


def test_spec_flattens_dicts_in_order_and_refuses_bad_keys_or_shapes():
    spec = ObservationSpec.from_shapes({"achieved_goal": (2,), "desired_goal": (2,), "observation": (4,)})
    assert spec.dim == 8 and spec.slice("desired_goal") == slice(2, 4) and spec.has_goals
    obs = {"observation": np.arange(8.0).reshape(2, 4), "achieved_goal": np.zeros((2, 2)),
           "desired_goal": np.ones((2, 2))}
    flat = spec.flatten(obs)
    np.testing.assert_array_equal(flat[0], [0, 0, 1, 1, 0, 1, 2, 3])
    with pytest.raises(DatasetError, match=r"observation key\(s\) \['desired_goal'\] missing"):
        spec.flatten({k: v for k, v in obs.items() if k != "desired_goal"})
    with pytest.raises(DatasetError, match="'observation' has shape \\(3,\\) per row, expected \\(4,\\)"):
        spec.flatten({**obs, "observation": np.zeros((2, 3))})
    assert ObservationSpec.from_dict(spec.to_dict()) == spec


def test_dict_observation_env_is_flattened_by_its_spec():
    spec = observation_spec("PointMaze_UMaze-v3")
    envs = make_vec_env("PointMaze_UMaze-v3", 2)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, spec.dim) == (2, 8)
    np.testing.assert_array_equal(obs[:, spec.slice("achieved_goal")], obs[:, spec.slice("observation")][:, :2])


def test_pointmaze_data_is_deterministic_and_records_the_behaviour_success(maze_file, tmp_path):
    again = build_pointmaze(maze_recipes()["pointmaze-umaze"], tmp_path / "again.hdf5", 3000)
    a, b = read_d4rl_hdf5(maze_file), read_d4rl_hdf5(again)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    spec, stats = a.info.obs_spec, a.info.extra["success"]
    assert spec.has_goals and a.info.env_id == "PointMaze_UMaze-v3"
    # recomputed from the stored rows: the next achieved goal within 0.45 of the goal in force when acting
    reached = np.linalg.norm(a.next_observations[:, :2] - a.observations[:, 2:4], axis=1) <= 0.45
    assert stats["steps_at_goal_fraction"] == pytest.approx(float(reached.mean()))
    assert stats["episodes"] == len(a.episode_bounds())
    assert stats["episode_success_rate"] > 0.8 and stats["goals_reached_per_episode"] >= 1.0


def test_relabelled_goals_come_from_the_same_episodes_future(maze_file):
    data = load_dataset(DatasetConfig(name="umaze", source="hdf5", path=str(maze_file)))
    normalizer = ObsNormalizer.fit(data.observations)
    store = TransitionStore.from_data(data, seed=0)
    store.normalize_obs(normalizer)
    source = GoalRelabel(store, data.info.obs_spec, normalizer, GoalRelabelConfig())
    batch = source.sample(4096)
    spec = data.info.obs_spec
    goal = batch.obs[:, spec.slice("desired_goal")] * normalizer.std[2:4] + normalizer.mean[2:4]
    raw_next = torch.as_tensor(data.next_observations)
    bounds = data.episode_bounds()
    # every relabelled goal equals the achieved goal of some row at or after the sampled one, same episode
    achieved = raw_next[:, spec.slice("achieved_goal")]
    for k in range(0, 4096, 97):
        obs_raw = batch.obs[k] * normalizer.std + normalizer.mean
        same = (torch.as_tensor(data.observations)[:, 4:] - obs_raw[4:]).abs().max(1).values < 1e-3
        matches = torch.nonzero(same).squeeze(1)
        row = int(matches[0])
        start, stop = next((s, e) for s, e in bounds if s <= row < e)
        assert torch.isclose(achieved[row:stop], goal[k], atol=1e-4).all(1).any(), k
    success = (batch.next_obs[:, spec.slice("achieved_goal")] * normalizer.std[:2] + normalizer.mean[:2] - goal)
    np.testing.assert_array_equal(batch.rewards.numpy(), (success.norm(dim=1) <= 0.45).float().numpy())
    assert torch.equal(batch.rewards, batch.dones) and batch.rewards.mean() > 0.0


def test_goal_conditioned_training_on_data_without_goals_is_refused():
    with pytest.raises(DatasetError, match="relabel.enabled=true but the data has no 'desired_goal'"):
        wants_relabelling(GoalRelabelConfig(enabled=True), ObservationSpec.flat(11), "hopper.hdf5")
    assert not wants_relabelling(GoalRelabelConfig(), ObservationSpec.flat(11), "hopper.hdf5")


def test_data_whose_spec_does_not_fit_the_env_is_refused(maze_file):
    with pytest.raises(DatasetError, match="observation spec .* does not match the env's"):
        load_dataset(DatasetConfig(name="umaze", source="hdf5", path=str(maze_file), env_id="Hopper-v5"))


class GoalInInfoEnv(__import__("gymnasium").Env):
    """Like OGBench's goal-conditioned tasks: the goal comes in reset's info, chosen by options['task_id']."""

    import gymnasium as _gym

    observation_space = _gym.spaces.Box(-10, 10, (3,), np.float32)
    action_space = _gym.spaces.Box(-1, 1, (3,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.task = options["task_id"]
        self.x = np.zeros(3, np.float32)
        return self.x.copy(), {"goal": np.full(3, float(self.task), np.float32)}

    def step(self, action):
        self.x = self.x + action
        return self.x.copy(), 0.0, False, False, {"success": bool(np.abs(self.x - self.task).max() < 0.1)}


def test_goal_from_reset_puts_the_task_goal_in_the_observation_and_cycles_tasks():
    from offrl.envs import FlattenBySpec, GoalFromReset

    env = FlattenBySpec(GoalFromReset(GoalInInfoEnv()))
    spec = env.obs_spec
    assert spec.keys == ["desired_goal", "observation"] and spec.achieved_key == "observation" and spec.has_goals
    goals = [env.reset(seed=s)[0][spec.slice("desired_goal")][0] for s in range(100, 105)]
    assert sorted(goals) == [1.0, 2.0, 3.0, 4.0, 5.0]  # seeds 100..104 visit each of the 5 tasks once


def test_goals_from_observations_relabels_with_future_observations():
    from offrl.data.arrays import DatasetInfo, OfflineData
    from offrl.data.goals import goals_from_observations

    raw = make_raw_episodes()
    data = OfflineData(**raw, info=DatasetInfo(name="gc", source="test", location="gc"))
    data = goals_from_observations(data, "offrl-test/goal-v0", threshold=1e-4)
    spec = data.info.obs_spec
    assert data.obs_dim == 6 and data.info.env_id == "offrl-test/goal-v0" and spec.achieved_key == "observation"
    normalizer = ObsNormalizer(6)
    store = TransitionStore.from_data(data, seed=0)
    batch = GoalRelabel(store, spec, normalizer, GoalRelabelConfig(), threshold=1e-4).sample(512)
    obs, goal = batch.obs[:, spec.slice("observation")], batch.obs[:, spec.slice("desired_goal")]
    episode_of = lambda v: torch.div(v[:, 0], 1000, rounding_mode="floor")  # noqa: E731
    assert torch.equal(episode_of(obs), episode_of(goal)) and (goal[:, 0] >= obs[:, 0] + 1).all()
    np.testing.assert_array_equal(batch.rewards.numpy(), (goal[:, 0] == obs[:, 0] + 1).float().numpy())


def make_raw_episodes():
    """Two episodes whose observation t of episode e is 1000 e + t (all dims), as tests.conftest does."""
    from tests.conftest import make_episodes

    raw = make_episodes([6, 5], ["timeout", "timeout"], obs_dim=3, act_dim=3)
    ends = raw.pop("terminals") | raw.pop("timeouts")
    return {**raw, "terminals": np.zeros(len(ends), bool), "episode_ends": ends}


def test_policy_goals_come_from_their_own_mixture():
    """dataset.relabel.policy.enabled: the transition (reward, end) keeps its mixture's goals, the policy's loss gets
    goals of its own in Batch.policy_obs, with the same states."""
    from offrl.data.arrays import DatasetInfo, OfflineData
    from offrl.data.goals import PolicyGoals, goals_from_observations

    data = goals_from_observations(OfflineData(**make_raw_episodes(), info=DatasetInfo(name="gc", source="test",
                                                                                     location="gc")),
                                   "offrl-test/goal-v0", threshold=1e-4)
    spec = data.info.obs_spec
    store = TransitionStore.from_data(data, seed=0)
    cfg = GoalRelabelConfig(p_current=1.0, p_trajectory=0.0, negative=True, policy=PolicyGoals(enabled=True))
    batch = GoalRelabel(store, spec, ObsNormalizer(6), cfg, threshold=1e-4).sample(512)
    state, goal = spec.slice("observation"), spec.slice("desired_goal")
    assert torch.equal(batch.obs[:, goal], batch.obs[:, state] + 1) and bool(batch.dones.all())
    assert bool((batch.rewards == 0.0).all())  # negative: success - 1
    policy_goal = batch.policy_obs[:, goal]
    assert torch.equal(batch.policy_obs[:, state], batch.obs[:, state])
    assert torch.equal(batch.actor_obs, batch.policy_obs)
    episode_of = lambda v: torch.div(v[:, 0], 1000, rounding_mode="floor")  # noqa: E731
    obs = batch.obs[:, state]
    assert torch.equal(episode_of(policy_goal), episode_of(obs)) and (policy_goal[:, 0] >= obs[:, 0] + 1).all()
    assert (policy_goal[:, 0] > obs[:, 0] + 1).float().mean() > 0.3  # goals further ahead than the value's
    no_policy = GoalRelabel(store, spec, ObsNormalizer(6), GoalRelabelConfig(), threshold=1e-4).sample(8)
    assert no_policy.policy_obs is None and no_policy.actor_obs is no_policy.obs


def test_batches_with_and_without_policy_observations_combine():
    from offrl.data.store import Batch, combine

    plain = Batch(*(torch.zeros(2, 3) for _ in range(2)), torch.zeros(2), torch.zeros(2, 3), torch.zeros(2))
    own = plain._replace(obs=torch.ones(2, 3), policy_obs=torch.full((2, 3), 2.0))
    joined = combine([own, plain], torch.cat)
    assert joined.policy_obs.tolist() == [[2.0] * 3] * 2 + [[0.0] * 3] * 2 and joined.obs[:2].eq(1).all()
    assert combine([plain, plain], torch.stack).policy_obs is None
    assert joined.map(lambda x: x[1:]).policy_obs.shape == (3, 3) and plain.map(lambda x: x[:1]).policy_obs is None


def test_policy_goals_with_an_agent_that_ignores_them_exit_2(maze_file, tmp_path, capsys):
    from offrl.cli import main

    code = main(["train", "agent=td3bc", "dataset=hdf5", f"dataset.path={maze_file}", "env=PointMaze_UMaze-v3",
                 "dataset.relabel.policy.enabled=true", "trainer.steps=2", f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2 and "dataset.relabel.policy: agent=td3bc" in err and "['bc', 'iql']" in err
