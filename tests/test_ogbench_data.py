"""OGBench manipulation datasets generated with OGBench's protocol: determinism, the recorded oracle
success, single-task rewards against the singletask env's own reward, episode layout, both readers,
success terminals that stop TD targets without cutting episodes (windows, relabelling, old-layout
files), and the error for unknown names. Small builds (1100 transitions: one full 1000-step episode
and a cut one) keep the file well under a minute."""

import json

import gymnasium as gym
import h5py
import mujoco
import numpy as np
import pytest
import torch

from offrl.cli import main
from offrl.core.errors import DatasetError
from offrl.data.d4rl import read_d4rl_hdf5, write_d4rl_hdf5
from offrl.data.goals import GoalRelabel, GoalRelabelConfig, goals_from_observations
from offrl.data.minari_reader import read_minari
from offrl.data.sources import DatasetConfig, load_dataset
from offrl.data.store import ObsNormalizer, TransitionStore
from offrl.data.windows import TrajectoryWindows
from offrl.generation import ogbench_gen
from offrl.generation.recipes import dataset_names, ensure_recipe_dataset
from tests.conftest import make_episodes

SIZE = 1100


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """cube-single-play at SIZE with 2 workers (episode 0 and the cut episode 1 in separate processes)."""
    root = tmp_path_factory.mktemp("ogbench")
    mp = pytest.MonkeyPatch()
    mp.setenv("OFFRL_DATA_DIR", str(root / "data"))
    mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("MUJOCO_GL", "egl")
    assert main(["datasets", "build", "cube-single-play", "--size", str(SIZE)]) == 0
    yield root, root / "data" / f"cube-single-play-{SIZE}.hdf5"
    mp.undo()


def _columns(path):
    with h5py.File(path, "r") as handle:
        out = {key: handle[key][()] for key in ("observations", "actions", "rewards", "next_observations",
                                                 "terminals", "timeouts", "successes") if key in handle}
        out.update({f"infos/{key}": handle[f"infos/{key}"][()] for key in handle["infos"]})
        meta = {key: handle[f"metadata/{key}"][()] for key in handle["metadata"]}
    return out, {k: json.loads(v) if isinstance(v, bytes) and v[:1] in b"{[" else v for k, v in meta.items()}


def test_names_are_listed():
    names = dataset_names()
    for family in ("cube-single", "cube-double", "scene", "puzzle-3x3"):
        for kind in ("play", "noisy"):
            assert f"{family}-{kind}" in names and f"{family}-{kind}-task5" in names
    assert ogbench_gen.split_name("puzzle-3x3-noisy-task4") == ("puzzle-3x3", "noisy", 4)


def test_episode_layout_and_d4rl_reader(built):
    _, path = built
    arrays, meta = _columns(path)
    assert len(arrays["rewards"]) == SIZE
    # episodes of 1000 transitions, the last cut by the size: timeouts only, never terminals
    assert np.flatnonzero(arrays["timeouts"]).tolist() == [999, SIZE - 1] and not arrays["terminals"].any()
    np.testing.assert_array_equal(arrays["infos/episode"], np.repeat([0, 1], [1000, SIZE - 1000]))
    within = ~arrays["timeouts"][:-1]
    np.testing.assert_array_equal(arrays["next_observations"][:-1][within], arrays["observations"][1:][within])
    assert arrays["infos/qpos"].shape == (SIZE, 21) and arrays["infos/qpos"].dtype == np.float64
    # the stored state is the state of observations[i]: the cube position in the observation is
    # (qpos[14:17] - (0.425, 0, 0)) * 10
    np.testing.assert_allclose(arrays["observations"][:, 19:22],
                               (arrays["infos/qpos"][:, 14:17] - [0.425, 0.0, 0.0]) * 10, atol=1e-5)
    assert np.abs(arrays["actions"]).max() <= 1.0
    assert meta["recipe"]["noise"] == 0.1 and meta["recipe"]["noise_smoothing"] == 0.5
    data = read_d4rl_hdf5(path)
    assert len(data) == SIZE and data.info.env_id == "cube-single-v0" and data.episode_ends.sum() == 2


def test_generation_is_deterministic_and_independent_of_workers(built, tmp_path):
    _, path = built
    again = ogbench_gen.RECIPES["cube-single-play"].build(tmp_path / "again.hdf5", SIZE, workers=1, minari=False)
    first, _ = _columns(path)
    second, _ = _columns(again)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_recorded_oracle_success_matches_the_data(built):
    _, path = built
    arrays, meta = _columns(path)
    stats = meta["oracle_success"]
    # recomputed here row by row: a subtask succeeded if the data-collection reward (target reached)
    # was 1 at some row; each episode's last subtask is cut by the time limit and not counted
    outcomes = []
    for episode in np.unique(arrays["infos/episode"]):
        rows = arrays["infos/episode"] == episode
        subtasks = arrays["infos/subtask"][rows]
        for subtask in np.unique(subtasks)[:-1]:
            outcomes.append(bool((arrays["rewards"][rows][subtasks == subtask] > 0).any()))
    assert stats["subtasks_finished"] == len(outcomes) > 5
    assert stats["subtask_success_rate"] == pytest.approx(np.mean(outcomes))
    assert stats["subtask_success_rate"] > 0.8  # the play oracle solves nearly every pick-and-place
    for task in range(1, 6):
        goal = ogbench_gen.task_goal("cube-single", task)
        cube = arrays["infos/qpos"][:, 14:17]
        hit = np.linalg.norm(cube - goal.cube_targets[0], axis=1) <= 0.04
        per_episode = [hit[arrays["infos/episode"] == e].any() for e in (0, 1)]
        assert stats["task_goal_reached_rate"][f"task{task}"] == pytest.approx(np.mean(per_episode))


def _env_reward(env, qpos, qvel, action, button_states=None):
    """The singletask env's own reward and termination for one stored transition: set the stored
    state, then step (rewards are computed on the state before the step, success_timing='pre')."""
    base = env.unwrapped
    base._data.qpos[:], base._data.qvel[:] = qpos, qvel
    if button_states is not None:
        base._cur_button_states = button_states.copy()
    mujoco.mj_forward(base._model, base._data)
    base.pre_step()  # previous state = this state: no button counts as pressed
    base.post_step()  # the env's success flag of that state
    _, reward, terminated, _, _ = env.step(action)
    return reward, terminated


def _check_single_task(path, env_id, rows_per_kind=8):
    arrays, meta = _columns(path)
    env = gym.make(env_id)
    env.reset(seed=0)
    with h5py.File(meta["recipe"]["relabelled_from"], "r") as handle:
        qpos, qvel = handle["infos/qpos"][()], handle["infos/qvel"][()]
        buttons = handle["infos/button_states"][()] if "infos/button_states" in handle else None
    rng = np.random.default_rng(0)
    rows = np.concatenate([np.flatnonzero(arrays["successes"])[:rows_per_kind],
                           rng.choice(len(qpos), rows_per_kind, replace=False)])
    for i in rows:
        reward, terminated = _env_reward(env, qpos[i], qvel[i], arrays["actions"][i],
                                         None if buttons is None else buttons[i])
        assert reward == arrays["rewards"][i] and terminated == arrays["successes"][i], f"row {i}"
    env.close()
    return arrays


def test_single_task_rewards_match_the_singletask_env(built):
    root, path = built
    _, meta = _columns(path)
    rates = meta["oracle_success"]["task_goal_reached_rate"]
    task = max(range(1, 6), key=lambda k: rates[f"task{k}"])  # a task whose goal the data reaches
    assert main(["datasets", "build", f"cube-single-play-task{task}", "--size", str(SIZE)]) == 0
    single = root / "data" / f"cube-single-play-task{task}-{SIZE}.hdf5"
    arrays = _check_single_task(single, f"cube-single-singletask-task{task}-v0")
    assert set(np.unique(arrays["rewards"])) <= {-1.0, 0.0}
    successes = arrays["successes"]
    np.testing.assert_array_equal(successes, arrays["rewards"] == 0.0)
    assert successes[:-1].any() and rates[f"task{task}"] > 0  # the data solves the task inside an episode
    # the same transitions and the same episode ends as the goal-conditioned file: a success ends no episode
    base, _ = _columns(path)
    for key in ("observations", "terminals", "timeouts"):
        np.testing.assert_array_equal(arrays[key], base[key], err_msg=key)
    # read through the dataset config, with its singletask evaluation env: two whole episodes, TD targets
    # stopping at every success
    data = load_dataset(DatasetConfig(name=f"cube-single-play-task{task}", size=SIZE), log=lambda _: None)
    assert data.info.env_id == f"cube-single-singletask-task{task}-v0" and len(data) == SIZE
    assert data.episode_bounds().tolist() == [[0, 1000], [1000, SIZE]]
    np.testing.assert_array_equal(data.terminals, successes)
    inside = int((successes & ~arrays["timeouts"]).sum())
    assert data.summary()["success_terminals"] == inside > 0
    assert f"{SIZE} transitions in 2 episodes" in data.describe() and f"{inside} success terminals" in data.describe()
    # its Minari copy: the same two episodes, a success a termination inside its episode
    copy = read_minari(f"ogbench/cube-single/play-task{task}-{SIZE}-v0")
    np.testing.assert_array_equal(copy.episode_ends, data.episode_ends)
    np.testing.assert_array_equal(copy.terminals, data.terminals)


def test_puzzle_button_rewards_match_the_singletask_env(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path))
    recipe = ogbench_gen.RECIPES["puzzle-3x3-noisy-task1"]
    path = recipe.build(tmp_path / "p.hdf5", 150, workers=1, minari=False, log=lambda _: None)
    arrays = _check_single_task(path, "puzzle-3x3-singletask-task1-v0")
    assert arrays["rewards"].min() >= -9 and arrays["rewards"].max() <= 0


def test_minari_copy_reads_back(built):
    _, path = built
    data = read_d4rl_hdf5(path)
    copy = read_minari(f"ogbench/cube-single/play-{SIZE}-v0")
    assert copy.info.env_id == "cube-single-v0"
    np.testing.assert_allclose(copy.observations, data.observations, rtol=1e-6)
    np.testing.assert_array_equal(copy.actions, data.actions)
    np.testing.assert_array_equal(copy.episode_ends, data.episode_ends)


@pytest.mark.parametrize("name, hint", [("cube-single-play-task9", "cube-single-play-task"),
                                        ("cube-triple-play", "cube-"), ("scene-replay", "scene-")])
def test_unknown_names_are_one_line_errors_with_suggestions(name, hint):
    with pytest.raises(DatasetError) as err:
        ensure_recipe_dataset(name)
    text = str(err.value)
    assert "\n" not in text and name in text and "did you mean" in text and hint in text.split("did you mean")[1]


# ---------------------------------------------------------------------- success terminals inside episodes
LENGTHS, SUCCESS_ROWS = [40, 30], [10, 11, 12, 25, 50, 51, 52]  # two time-limited episodes, tasks solved inside


def _single_task_arrays(old_layout: bool = False) -> dict[str, np.ndarray]:
    """Two episodes of the single-task layout (observation t of episode e is 1000 e + t); ``old_layout``: the
    successes in ``terminals``, as offrl wrote single-task files before the ``successes`` key."""
    raw = make_episodes(LENGTHS, ["timeout", "timeout"], obs_dim=2, act_dim=2)
    successes = np.isin(np.arange(sum(LENGTHS)), SUCCESS_ROWS)
    raw["rewards"] = successes - 1.0
    if old_layout:
        raw["terminals"], raw["timeouts"] = successes, raw["timeouts"] & ~successes
    else:
        raw["successes"] = successes
    return raw


def _single_task_file(path, old_layout: bool = False):
    metadata = {"dataset_form": "single-task", "recipe": {"name": "cube-single-play-task2", "size": sum(LENGTHS)}}
    return write_d4rl_hdf5(path, _single_task_arrays(old_layout), metadata)


@pytest.mark.parametrize("next_observations", [True, False])
def test_success_terminals_stop_td_targets_inside_whole_episodes(tmp_path, next_observations):
    raw = _single_task_arrays()
    if not next_observations:  # qlearning_dataset layout: the rows at the time limits are dropped
        del raw["next_observations"]
    data = read_d4rl_hdf5(write_d4rl_hdf5(tmp_path / "s.hdf5", raw, {"dataset_form": "single-task"}))
    n = len(data)
    assert data.episode_bounds().tolist() == ([[0, 40], [40, 70]] if next_observations else [[0, 39], [39, 68]])
    kept = np.flatnonzero(~raw["timeouts"]) if not next_observations else np.arange(70)
    np.testing.assert_array_equal(data.terminals, raw["successes"][kept])
    # a success row's successor is the next state of its episode (not a placeholder)
    np.testing.assert_array_equal(data.next_observations[:, 0], data.observations[:, 0] + 1)
    summary = data.summary()
    assert (summary["episodes"], summary["success_terminals"], summary["timeouts"]) == (2, 7, 2)
    assert f"{n} transitions in 2 episodes (0 terminal, 2 time-limit ends; 7 success terminals" in data.describe()
    # the store's TD flags are the successes
    store = TransitionStore.from_data(data)
    np.testing.assert_array_equal(store.dones.numpy() > 0.5, data.terminals)


def test_windows_and_relabelling_run_through_successes_but_not_across_episodes(tmp_path):
    data = read_d4rl_hdf5(_single_task_file(tmp_path / "s.hdf5"))
    horizon = 8
    windows = TrajectoryWindows(TransitionStore.from_data(data), horizon, stride=3, val_fraction=0.0)
    assert windows.bounds.tolist() == [[0, 40], [40, 70]]
    # the starts of two time-limited episodes: every third row, the last window ending before the time limit
    assert windows.train_starts.tolist() == [*range(0, 40 - horizon, 3), *range(40, 70 - horizon, 3)]
    raw = windows.normalizer.unnormalize(windows.windows(windows.train_starts))
    episode, done = raw[..., 0].round() // 1000, raw[..., -1].round()
    assert (episode == episode[:, :1]).all(), "a window crossed an episode boundary"
    assert (done[:, :-1] == 1).any(), "no window runs through a success"
    starts = windows.train_starts.numpy()[:, None] + np.arange(horizon)
    np.testing.assert_array_equal(done.numpy() == 1, np.isin(starts, SUCCESS_ROWS))

    goal_data = goals_from_observations(data, "goal-env", threshold=0.5)
    store = TransitionStore.from_data(goal_data, seed=0)
    relabel = GoalRelabel(store, goal_data.info.obs_spec, ObsNormalizer(goal_data.obs_dim),
                          GoalRelabelConfig(p_trajectory=1.0), threshold=0.5)
    batch, spec = relabel.sample(4096), goal_data.info.obs_spec
    # observation t of row t; its goal: the next observation of a row of the rest of its episode
    row, goal = batch.obs[:, spec.slice("observation")][:, 0], batch.obs[:, spec.slice("desired_goal")][:, 0]
    assert (goal > row).all() and (goal // 1000 == row // 1000).all(), "a goal from another episode"
    before = row < SUCCESS_ROWS[0]
    assert goal[before].max() == 40, "relabelling stopped at the first success"
    torch.testing.assert_close(batch.dones, (goal == row + 1).float())  # done = the goal is reached


def test_old_single_task_layout_is_refused_with_the_rebuild_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    outside = _single_task_file(tmp_path / "copy.hdf5", old_layout=True)
    cached = _single_task_file(tmp_path / "cache" / "cube-single-play-task2-70.hdf5", old_layout=True)
    for path in (outside, cached):
        with pytest.raises(DatasetError) as err:
            read_d4rl_hdf5(path)
        text = str(err.value)
        assert "\n" not in text and str(path) in text and "old layout" in text and "'successes'" in text
        assert text.endswith("offrl datasets build cube-single-play-task2 --size 70 --force")
    before = outside.read_bytes()
    assert main(["datasets", "to-minari", str(outside), "--id", "test/old-v0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "old layout" in err[0] and outside.read_bytes() == before
    assert not (tmp_path / "minari").exists()
    assert main(["datasets", "list"]) == 0  # the list still shows every dataset, naming the outdated build
    listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("cube-single-play-task2 "))
    assert "unreadable:" in listed and "--force" in listed
