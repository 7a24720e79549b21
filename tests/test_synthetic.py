"""Synthetic data as a batch source: a trajectory model's samples mixed into any offline agent's
batches, regenerated every K updates (guided by the current agent), saved in checkpoints."""

import json

import pytest
import torch

from offrl.cli import main
from offrl.core import checkpoint
from offrl.data.cache import cache_file
from tests.conftest import FAST, SMALL_SIZE


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_default_dataset):
    out = tmp_path_factory.mktemp("trajectory") / "model"
    assert main(["diffusion", "train", "dataset=idp-mixed", f"size={SMALL_SIZE}", f"dir={out}", "preset=cpu",
                 "steps=30", "features=16", "batch_size=8"]) == 0
    return out


def _args(model_dir, run, steps=40, *extra):
    return ["train", "agent=td3bc", *FAST, "synthetic=pgd", f"synthetic.model={model_dir}",
            "synthetic.num_trajectories=8", "synthetic.horizon=17", "synthetic.sampler_steps=6",
            "synthetic.refresh_every=15", f"trainer.steps={steps}", f"trainer.eval_every={steps}",
            "trainer.eval_episodes=1", "trainer.checkpoint_every=20", "threads=1", f"hydra.run.dir={run}", *extra]


def _synthetic_state(run):
    state = checkpoint.load(run / "checkpoints" / "last.pt")
    return state, state["phases"]["offline"]["source"]["sources"][0]


def test_any_offline_agent_trains_on_regenerated_synthetic_data(tmp_path, model_dir):
    run = tmp_path / "run"
    assert main(_args(model_dir, run)) == 0
    state, synthetic = _synthetic_state(run)
    assert synthetic["refreshes"] == 3  # at updates 0 (unguided), 15 and 30 (guided by the agent)
    assert synthetic["table"]["size"] == 8 * 16 and synthetic["model"] == str(model_dir)
    assert json.loads((run / "results.json").read_text())["steps"] == 40
    iql = tmp_path / "iql"
    assert main([*_args(model_dir, iql), "agent=iql"]) == 0  # another agent, no agent-specific code


def test_killed_run_resumes_with_the_same_synthetic_data(tmp_path, model_dir):
    reference = tmp_path / "reference"
    assert main(_args(model_dir, reference)) == 0
    run = tmp_path / "run"
    assert main(_args(model_dir, run, steps=20)) == 0  # stops after the checkpoint at 20 (refresh 2 in force)
    assert main(["train", f"resume={run}", "trainer.steps=40"]) == 0
    (a, sa), (b, sb) = _synthetic_state(run), _synthetic_state(reference)
    torch.testing.assert_close(sa["table"]["obs"], sb["table"]["obs"], rtol=0, atol=0)
    for key, value in b["agent"].items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(a["agent"][key], value, rtol=0, atol=0, msg=key)


def test_guidance_changes_the_regenerated_data(tmp_path, model_dir):
    guided, unguided = tmp_path / "guided", tmp_path / "unguided"
    assert main([*_args(model_dir, guided, 20), "synthetic.guidance_coef=50"]) == 0
    assert main([*_args(model_dir, unguided, 20), "synthetic=unguided"]) == 0
    _, g = _synthetic_state(guided)
    _, u = _synthetic_state(unguided)
    assert g["refreshes"] == u["refreshes"] == 2
    assert not torch.equal(g["table"]["actions"], u["table"]["actions"])  # the second table is guided


@pytest.mark.parametrize("change,message", [
    (["synthetic.model=/nonexistent/model"], "no such model directory"),
    (["synthetic.guidance_coef=nan"], "synthetic.guidance_coef=nan: expected a finite number >= 0"),
    (["dataset.size=4000"], "the model was trained for another dataset"),
])
def test_bad_synthetic_settings_are_one_line_and_write_nothing(tmp_path, model_dir, capsys, change, message):
    run = tmp_path / "run"
    assert main([*_args(model_dir, run), *change]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("offrl: error:")]
    assert len(err) == 1 and message in err[0] and not run.exists()
    assert not cache_file("idp-mixed", 4000).exists()  # a model of another dataset is refused before building it


@pytest.mark.parametrize("group", ["pgd", "unguided"])
def test_synthetic_group_without_a_model_is_refused(tmp_path, small_default_dataset, capsys, group):
    run = tmp_path / "run"
    assert main(["train", "agent=td3bc", *FAST, f"synthetic={group}", f"hydra.run.dir={run}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs synthetic.model=<dir>" in err[0] and not run.exists()


def test_truncated_model_file_is_refused(tmp_path, model_dir, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    data = (model_dir / "model.pt").read_bytes()
    (broken / "model.pt").write_bytes(data[: len(data) // 2])
    assert main(_args(broken, tmp_path / "run")) == 2
    assert "truncated or unreadable" in capsys.readouterr().err


def test_the_table_follows_the_model_preset_and_every_refresh_shows_progress_and_its_cost(tmp_path, model_dir,
                                                                                          capsys):
    """Without synthetic.num_trajectories the table has the model preset's size (preset=cpu: 128 trajectories);
    sampling shows progress, and each refresh reports its transitions, time and rate."""
    run = tmp_path / "run"
    args = [a for a in _args(model_dir, run, 20) if not a.startswith("synthetic.num_trajectories")]
    assert main(args) == 0
    out = capsys.readouterr()
    _, synthetic = _synthetic_state(run)
    assert synthetic["table"]["size"] == 128 * 16  # the cpu preset's 128 trajectories of horizon 17
    assert "tables of 128 trajectories x 16 transitions (6 sampler steps)" in out.out
    assert "synthetic table 1 (unguided): 2048/2048 transition (100%)" in out.err  # the bar's last status line
    for k, kind, update in ((1, "unguided", 0), (2, "guided", 15)):
        assert f"offrl: synthetic table {k} ({kind}) at update {update}: 2048 transitions from 128 trajectories in " \
               in out.out + out.err
