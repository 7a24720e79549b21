"""OGBench PointMaze datasets generated with OGBench's protocol (navigate, stitch): episode layout, the
reward as the env's success, the recorded oracle success against a recount, determinism across worker
counts, OGBench's five evaluation tasks, and goal-conditioned training end to end. Small builds."""

import json

import gymnasium as gym
import h5py
import numpy as np
import pytest

from offrl.cli import main
from offrl.envs import GOAL_ENV_PREFIX, register_extra_envs
from offrl.generation.ogbench_maze import RECIPES

SIZE = 2100  # two full episodes of 1000 transitions and a cut one


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ogbench-maze")
    mp = pytest.MonkeyPatch()
    mp.setenv("OFFRL_DATA_DIR", str(root / "data"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    assert main(["datasets", "build", "pointmaze-medium-navigate", "--size", str(SIZE)]) == 0
    yield root, root / "data" / f"pointmaze-medium-navigate-{SIZE}.hdf5"
    mp.undo()


def _read(path):
    with h5py.File(path, "r") as handle:
        arrays = {key: handle[key][()] for key in handle if key not in ("metadata", "infos")}
        arrays.update({f"infos/{key}": handle[f"infos/{key}"][()] for key in handle["infos"]})
        meta = {key: handle[f"metadata/{key}"][()] for key in handle["metadata"]}
    return arrays, {k: json.loads(v) if isinstance(v, bytes) and v[:1] in b"{[" else v for k, v in meta.items()}


def test_layout_reward_and_recorded_success(built):
    _, path = built
    arrays, meta = _read(path)
    assert len(arrays["rewards"]) == SIZE and arrays["observations"].shape == (SIZE, 2)
    ends = np.flatnonzero(arrays["timeouts"])
    assert ends.tolist() == [999, 1999, SIZE - 1] and not arrays["terminals"].any()
    inside = ~arrays["timeouts"][:-1]
    np.testing.assert_array_equal(arrays["next_observations"][:-1][inside], arrays["observations"][1:][inside])
    assert np.abs(arrays["actions"]).max() <= 1.0
    # the reward is the env's success: the step ends within 1.0 of the row's goal
    distance = np.linalg.norm(arrays["next_observations"] - arrays["infos/goal"], axis=1)
    np.testing.assert_array_equal(arrays["rewards"] > 0, distance <= 1.0)
    # the recorded arrivals, recounted row by row
    arrivals = {}
    for i in range(SIZE):
        episode = int(arrays["infos/episode"][i])
        stay = i > 0 and arrays["infos/episode"][i - 1] == episode and arrays["rewards"][i - 1] > 0 \
            and (arrays["infos/goal"][i - 1] == arrays["infos/goal"][i]).all()
        arrivals[episode] = arrivals.get(episode, 0) + int(arrays["rewards"][i] > 0 and not stay)
    recorded = meta["oracle_success"]
    assert recorded["episodes"] == 3
    assert recorded["arrivals_per_episode"] == pytest.approx(np.mean(list(arrivals.values())))
    assert recorded["arrivals_per_episode"] > 2  # the noisy oracle still reaches goal after goal
    assert meta["dataset_form"] == b"goal-conditioned" and meta["env_id"] == b"pointmaze-medium-v0"
    assert meta["recipe"]["action_noise"] == 0.5 and meta["recipe"]["steps_per_episode"] == 1001


def test_analysis_sees_the_stored_observations(built, tmp_path):
    assert main(["datasets", "analyze", "pointmaze-medium-navigate", "--size", str(SIZE), "--out", str(tmp_path)]) == 0
    [result] = json.loads((tmp_path / "analysis.json").read_text())["datasets"]
    assert len(result["coverage"]["observations"]["std"]) == 2  # x, y: not the empty goal slot of training
    assert result["recorded_success"]["episodes"] == 3


def test_deterministic_whatever_the_workers(tmp_path):
    one = RECIPES["pointmaze-medium-stitch"].build(tmp_path / "one.hdf5", size=500, workers=1, log=lambda _: None)
    two = RECIPES["pointmaze-medium-stitch"].build(tmp_path / "two.hdf5", size=500, workers=2, log=lambda _: None)
    (a, _), (b, _) = _read(one), _read(two)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # stitch: episodes of 200 transitions, each heading for one goal
    assert np.flatnonzero(a["timeouts"]).tolist() == [199, 399, 499]
    assert all(len(np.unique(a["infos/goal"][a["infos/episode"] == e], axis=0)) == 1 for e in range(3))


def test_build_honours_workers(built):
    root, _ = built
    assert main(["datasets", "build", "pointmaze-medium-stitch", "--size", "400", "--workers", "1"]) == 0
    _, meta = _read(root / "data" / "pointmaze-medium-stitch-400.hdf5")
    assert meta["recipe"]["workers"] == 1


def test_evaluation_cycles_through_ogbench_tasks():
    register_extra_envs()
    env = gym.make(GOAL_ENV_PREFIX + "pointmaze-medium-v0")
    tasks = env.unwrapped.task_infos
    assert len(tasks) == 5 and env.spec.max_episode_steps == 1000
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        task = tasks[seed % 5]  # task_id = seed % 5 + 1
        # within the start/goal noise of the task (tasks lie cells, 4 units, apart)
        assert np.linalg.norm(obs["desired_goal"] - np.array(task["goal_xy"])) < 1.5
        assert np.linalg.norm(obs["observation"] - np.array(task["init_xy"])) < 1.5
    env.close()


def test_goal_conditioned_training_reports_success(built, tmp_path):
    run = tmp_path / "gcbc"
    assert main(["train", "agent=bc", "dataset=pointmaze-medium-navigate", f"dataset.size={SIZE}", "threads=1",
                 "trainer.steps=40", "trainer.eval_every=40", "trainer.eval_episodes=5", "trainer.log_every=20",
                 f"hydra.run.dir={run}"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["env_id"] == GOAL_ENV_PREFIX + "pointmaze-medium-v0"
    assert 0.0 <= results["success_rate"] <= 1.0
    assert results["eval_history"][-1]["success_rate"] == results["success_rate"]


def test_unknown_maze_name_is_one_line(capsys):
    assert main(["datasets", "build", "pointmaze-medium-navigat"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pointmaze-medium-navigate" in err[0]
