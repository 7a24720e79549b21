"""D4RL-protocol generation: ship behaviour policies from a (tiny) SAC run, build every quality,
read the output with both readers, and regenerate it bit-identically."""

import json

import numpy as np
import pytest

from offrl.cli import main
from offrl.data.d4rl import read_d4rl_hdf5
from offrl.data.minari_reader import read_minari
from offrl.generation.generate import BehaviourCard

SAC_RUN = ["agent=sac", "env=Hopper-v5", "agent.hidden_dims=[32,32]", "trainer.steps=600",
           "trainer.warmup_steps=100", "trainer.eval_every=200", "trainer.eval_episodes=2",
           "trainer.snapshot_policies=true", "trainer.checkpoint_every=600", "threads=1", "seed=0"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A tiny Hopper SAC run shipped as behaviour policies into a temporary datasets/ folder."""
    root = tmp_path_factory.mktemp("gen")
    mp = pytest.MonkeyPatch()
    mp.setenv("OFFRL_BEHAVIOUR_DIR", str(root / "datasets"))
    mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    run = root / "sac-run"
    assert main(["train", *SAC_RUN, f"hydra.run.dir={run}"]) == 0
    assert main(["datasets", "ship", "hopper", "--run", str(run), "--command", "offrl train ...",
                 "--ref-episodes", "4"]) == 0
    yield root, run
    mp.undo()


def test_ship_picks_expert_and_medium_snapshots(shipped):
    root, _ = shipped
    card = BehaviourCard.load("hopper")
    assert card.medium_step < card.expert_step and card.expert_step in (200, 400, 600)
    assert (root / "datasets" / "hopper" / "expert.pt").exists()
    assert card.ref_min_score == card.policy_returns["random"]
    assert card.ref_max_score == card.policy_returns["expert"] and card.ref_episodes == 4


def test_medium_dataset_opens_with_both_readers_and_regenerates_identically(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path / "a"))
    assert main(["datasets", "build", "hopper-medium", "--size", "1500", "--workers", "2"]) == 0
    data = read_d4rl_hdf5(tmp_path / "a" / "hopper-medium-1500.hdf5")
    assert len(data) == 1500 and data.info.env_id == "Hopper-v5"
    card = BehaviourCard.load("hopper")
    assert (data.info.ref_min_score, data.info.ref_max_score) == (card.ref_min_score, card.ref_max_score)
    assert data.info.extra["recipe"]["quality"] == "medium"
    # episodes end in a terminal (the hopper fell) or a timeout, never both; within an episode s'_t = s_t+1
    within = ~data.episode_ends[:-1]
    np.testing.assert_array_equal(data.next_observations[:-1][within], data.observations[1:][within])
    assert data.terminals.sum() > 0

    minari_data = read_minari("offrl/hopper/medium-1500-v0")  # a build of another size has its own id
    np.testing.assert_allclose(minari_data.observations, data.observations, rtol=1e-6)
    np.testing.assert_array_equal(minari_data.terminals, data.terminals)
    np.testing.assert_array_equal(minari_data.episode_ends, data.episode_ends)
    assert minari_data.info.ref_max_score == pytest.approx(card.ref_max_score)

    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path / "b"))
    assert main(["datasets", "build", "hopper-medium", "--size", "1500", "--workers", "2"]) == 0
    again = read_d4rl_hdf5(tmp_path / "b" / "hopper-medium-1500.hdf5")
    for key in ("observations", "actions", "rewards", "next_observations", "terminals", "episode_ends"):
        np.testing.assert_array_equal(getattr(again, key), getattr(data, key))


def test_random_and_medium_expert(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path))
    assert main(["datasets", "build", "hopper-random", "--size", "500", "--workers", "1"]) == 0
    random = read_d4rl_hdf5(tmp_path / "hopper-random-500.hdf5")
    assert np.abs(random.actions).max() <= 1 and random.info.extra["algorithm"] == "uniform random"
    assert main(["datasets", "build", "hopper-medium-expert", "--size", "800", "--workers", "1"]) == 0
    mixed = read_d4rl_hdf5(tmp_path / "hopper-medium-expert-800.hdf5")
    assert len(mixed) == 800 and mixed.episode_ends[399]  # the medium half ends in a cut episode
    # with the halves already built, medium-expert reuses them: the same transitions
    assert main(["datasets", "build", "hopper-medium", "--size", "400", "--workers", "1"]) == 0
    assert main(["datasets", "build", "hopper-medium-expert", "--size", "800", "--workers", "1", "--force"]) == 0
    reused = read_d4rl_hdf5(tmp_path / "hopper-medium-expert-800.hdf5")
    np.testing.assert_array_equal(reused.observations, mixed.observations)


def test_medium_replay_is_the_run_prefix_and_reruns_identically(shipped, tmp_path, monkeypatch):
    root, run = shipped
    card = BehaviourCard.load("hopper")
    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path / "from-run"))
    assert main(["datasets", "build", "hopper-medium-replay", "--from-run", str(run)]) == 0
    from_run = read_d4rl_hdf5(tmp_path / "from-run" / "hopper-medium-replay.hdf5")
    assert len(from_run) == card.medium_replay_rows <= card.medium_step
    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path / "rerun"))
    assert main(["datasets", "build", "hopper-medium-replay"]) == 0
    rerun = read_d4rl_hdf5(tmp_path / "rerun" / "hopper-medium-replay.hdf5")
    for key in ("observations", "actions", "rewards", "terminals"):
        np.testing.assert_array_equal(getattr(rerun, key), getattr(from_run, key))


def test_list_shows_generated_names(shipped, capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "hopper-medium-replay" in out and "idp-mixed" in out


def test_unknown_generated_name_exits_2(capsys):
    assert main(["datasets", "build", "hopper-superb"]) == 2
    assert "hopper-superb" in capsys.readouterr().err


def test_card_is_json(shipped):
    root, _ = shipped
    card = json.loads((root / "datasets" / "hopper" / "behaviour.json").read_text())
    assert card["train_config"]["agent"]["name"] == "sac"
