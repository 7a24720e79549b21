"""offrl eval: scores of a run's checkpoints on fresh seeds, success rates, videos, and bad input."""

import json

import gymnasium as gym
import numpy as np
import pytest

from offrl.cli import main
from offrl.core.errors import OffrlError
from offrl.tools.evaluation import EVAL_SEED_OFFSET, choose_gl_backend
from tests.conftest import SMALL_SIZE

OFFLINE = ["agent=td3bc", "agent.hidden_dims=[32,32]", f"dataset.size={SMALL_SIZE}", "trainer.steps=20",
           "trainer.eval_every=10", "trainer.eval_episodes=1", "trainer.log_every=10", "trainer.batch_size=32",
           "trainer.snapshot_policies=true", "device=cpu", "threads=1", "seed=3"]


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory, small_default_dataset):
    run = tmp_path_factory.mktemp("eval") / "td3bc"
    assert main(["train", *OFFLINE, f"hydra.run.dir={run}"]) == 0
    return run


def _eval(capsys, *argv):
    capsys.readouterr()
    code = main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_last_and_best_print_and_write_scores(offline_run, capsys):
    code, out, _ = _eval(capsys, offline_run, "--episodes", 3)
    assert code == 0
    last = json.loads((offline_run / "eval_last.json").read_text())
    assert last["checkpoint"] == "last" and last["global_step"] == 20 and last["episodes"] == 3
    assert last["seed"] == EVAL_SEED_OFFSET + 3 and last["seeds"] == [10_003, 10_005]
    assert last["return_mean"] == pytest.approx(np.mean(last["returns"]))
    assert last["return_std"] == pytest.approx(np.std(last["returns"]))
    expected = 100 * (last["return_mean"] - last["ref_min_score"]) / (last["ref_max_score"] - last["ref_min_score"])
    assert last["normalized_score"] == pytest.approx(expected)
    assert "success_rate" not in last  # InvertedDoublePendulum reports no success
    assert f"return {last['return_mean']:.1f} +- {last['return_std']:.1f}" in out
    assert f"normalized score {last['normalized_score']:.1f}" in out and "eval_last.json" in out

    # on the trainer's evaluation seed (run seed + 100) eval replays the trainer's last evaluation exactly:
    # same observation normalisation, same deterministic actions
    history = json.loads((offline_run / "results.json").read_text())["eval_history"]
    assert _eval(capsys, offline_run, "--episodes", 1, "--seed", 3 + 100)[0] == 0
    assert json.loads((offline_run / "eval_last.json").read_text())["returns"] == [history[-1]["return_mean"]]

    code, out, _ = _eval(capsys, offline_run, "--checkpoint", "best", "--episodes", 2, "--seed", 7)
    assert code == 0
    best = json.loads((offline_run / "eval_best.json").read_text())
    top = max(history, key=lambda e: e["return_mean"])
    assert best["global_step"] == top["global_step"] and best["training_eval"]["return_mean"] == top["return_mean"]
    assert best["seeds"] == [7, 8] and "normalized score" in out

    assert _eval(capsys, offline_run, "--checkpoint", "step_00000010", "--episodes", 1)[0] == 0
    assert json.loads((offline_run / "eval_step_10.json").read_text())["global_step"] == 10


def test_eval_online_run_without_reference_returns(tmp_path, capfd):  # capfd: SDL writes to fd 2
    run = tmp_path / "sac"
    assert main(["train", "agent=sac", "env=Pendulum-v1", "agent.hidden_dims=[16,16]", "trainer.steps=20",
                 "trainer.warmup_steps=10", "trainer.batch_size=8", "trainer.eval_every=20", "trainer.eval_episodes=1",
                 "device=cpu", "threads=1", f"hydra.run.dir={run}"]) == 0
    code, out, _ = _eval(capfd, run, "--episodes", 2)
    assert code == 0 and "normalized score" not in out
    result = json.loads((run / "eval_last.json").read_text())
    assert result["env_id"] == "Pendulum-v1" and result["lengths"] == [200, 200] and "normalized_score" not in result

    # a classic-control env films through pygame, offscreen (no display, no SDL complaint about one)
    pytest.importorskip("pygame", reason="classic-control videos need pygame (pip install 'offrl[export]')")
    video = tmp_path / "pendulum.gif"
    code, out, err = _eval(capfd, run, "--episodes", 1, "--video", video)
    assert code == 0 and str(video) in out and "XDG_RUNTIME_DIR" not in err
    meta = json.loads((run / "eval_last.json").read_text())["video"]
    assert meta["frames"] == 201 and meta["fps"] == 30 and meta["gl_backend"] is None


class SuccessToy(gym.Env):
    """Three steps, observations shaped like InvertedDoublePendulum's; success on even seeds."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (9,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.lucky = 0, seed is not None and seed % 2 == 0
        return np.zeros(9), {}

    def step(self, action):
        self.t += 1
        return np.zeros(9), 1.0, self.t == 3, False, {"success": self.lucky and self.t == 3}


def test_success_rate_where_the_env_reports_success(offline_run, capsys):
    gym.register("OffrlSuccessToy-v0", entry_point=SuccessToy)
    try:
        code, out, _ = _eval(capsys, offline_run, "--env", "OffrlSuccessToy-v0", "--episodes", 5, "--seed", 100)
    finally:
        gym.registry.pop("OffrlSuccessToy-v0")
    assert code == 0 and "success rate 0.60" in out  # seeds 100, 102, 104 of 100..104
    result = json.loads((offline_run / "eval_last_OffrlSuccessToy-v0.json").read_text())
    assert result["success_rate"] == pytest.approx(0.6) and result["successes"] == [True, False, True, False, True]
    assert "normalized_score" not in result  # reference returns belong to the run's env


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_video_of_one_episode(offline_run, capsys, tmp_path, suffix):
    try:
        choose_gl_backend()
    except OffrlError as err:
        pytest.skip(f"no offscreen OpenGL backend on this machine: {err}")
    imageio = pytest.importorskip("imageio.v2")
    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg", reason="mp4 needs imageio-ffmpeg (pip install 'offrl[export]')")
    video = tmp_path / f"episode{suffix}"
    code, out, _ = _eval(capsys, offline_run, "--episodes", 2, "--video", video)
    assert code == 0 and str(video) in out
    result = json.loads((offline_run / "eval_last.json").read_text())
    meta = result["video"]
    # the first evaluation episode, replayed: the reset frame plus one frame per step, at render_fps
    assert meta["length"] == result["lengths"][0] and meta["episode_return"] == pytest.approx(result["returns"][0])
    assert meta["frames"] == meta["length"] + 1 and meta["fps"] == 20
    reader = imageio.get_reader(video)
    frames = reader.count_frames() if suffix == ".mp4" else len(list(reader))
    reader.close()
    assert frames == meta["frames"]


def test_bad_input_is_one_line_and_exit_2(offline_run, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    before = sorted(p.name for p in offline_run.iterdir())
    cases = {
        "does not exist": [tmp_path / "missing"],
        "holds no checkpoint": [empty],
        "is not last, best or step_N": [offline_run, "--checkpoint", "latest"],
        "this run has: last, best, step_10, step_20": [offline_run, "--checkpoint", "step_999"],
        "directory": [offline_run, "--video", tmp_path / "no" / "such" / "dir.gif"],
        ".mp4 or .gif": [offline_run, "--video", tmp_path / "episode.avi"],
        "did you mean Hopper-v5": [offline_run, "--env", "Hopperr-v5"],
        "but the policy was trained on InvertedDoublePendulum-v5": [offline_run, "--env", "Hopper-v5"],
        "must be a positive number": [offline_run, "--episodes", 0],
        "unrecognized arguments": [offline_run, "--bogus"],
        "is not a device offrl runs on": [offline_run, "--device", "tpu"],
    }
    for expected, argv in cases.items():
        code, out, err = _eval(capsys, *argv)
        assert code == 2 and out == "", (argv, out, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("offrl: error: ") and expected in err, (argv, err)
    assert sorted(p.name for p in offline_run.iterdir()) == before  # nothing written


def test_video_of_a_dict_observation_env(tmp_path):
    """PointMaze observes a dict: the filmed episode sees the same flat layout as training."""
    from offrl.tools.evaluation import record_video

    try:
        choose_gl_backend()
    except OffrlError as err:
        pytest.skip(f"no offscreen OpenGL backend on this machine: {err}")
    seen = []

    def policy(obs):
        seen.append(obs.shape)
        return np.zeros((len(obs), 2), np.float32)

    meta = record_video(policy, "PointMaze_UMaze-v3", {"max_episode_steps": 30}, 0, tmp_path / "maze.gif")
    assert meta["frames"] == meta["length"] + 1 == 31 and set(seen) == {(1, 8)}
