"""Checkpoints: atomic, complete, and a killed run resumes to the same parameters."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from offrl.cli import main
from offrl.core import checkpoint
from tests.conftest import FAST

ARGS = [*FAST, "trainer.steps=2000", "trainer.checkpoint_every=200", "trainer.eval_every=2000",
        "trainer.log_every=200", "seed=7", "threads=1"]


def _params(run_dir):
    return checkpoint.load(run_dir / "checkpoints" / "last.pt")["agent"]


@pytest.mark.parametrize("agent", ["td3bc"])
def test_killed_run_resumes_to_the_same_parameters(tmp_path, small_default_dataset, agent):
    reference = tmp_path / "uninterrupted"
    assert main(["train", f"agent={agent}", *ARGS, f"hydra.run.dir={reference}"]) == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "offrl.cli", "train", f"agent={agent}", *ARGS,
                             f"hydra.run.dir={killed}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = checkpoint.load(last)
    assert 0 < state["phases"]["offline"]["step"] < 2000, "the run should have been killed mid-way"
    assert not (killed / "results.json").exists()

    assert main(["train", f"resume={killed}"]) == 0
    resumed, expected = _params(killed), _params(reference)
    assert resumed.keys() == expected.keys()
    for key in expected:
        if isinstance(expected[key], torch.Tensor):
            torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=0, msg=key)
    a, b = (json.loads((d / "results.json").read_text()) for d in (killed, reference))
    assert a["steps"] == b["steps"] == 2000 and a["return_mean"] == b["return_mean"]


def test_checkpoint_holds_everything_needed(tmp_path, small_default_dataset):
    run = tmp_path / "run"
    assert main(["train", *FAST, "trainer.steps=20", "trainer.checkpoint_every=10", "trainer.eval_every=20",
                 f"hydra.run.dir={run}"]) == 0
    state = checkpoint.load(run / "checkpoints" / "last.pt")
    assert {"format", "agent", "optimizers", "rng", "normalizer", "phases", "config"} <= state.keys()
    assert set(state["optimizers"]) == {"actor", "critic"} and state["phases"]["offline"]["step"] == 20
    assert "generator" in state["phases"]["offline"]["source"]  # the dataset sampler's RNG
    assert state["agent"]["_extra_state"]["num_updates"] == 20
    assert not list((run / "checkpoints").glob(".*tmp"))  # no torn temp file left behind
    results = json.loads((run / "results.json").read_text())
    for key in ("normalized_score", "return_mean", "return_std", "steps", "wall_s", "updates_per_s"):
        assert results[key] is not None
    assert list((run / "tb").glob("events.out.tfevents*"))
    assert (run / "config.yaml").exists()


def test_resume_can_extend_a_finished_run(tmp_path, small_default_dataset):
    run = tmp_path / "run"
    assert main(["train", *FAST, "trainer.steps=20", "trainer.eval_every=20", f"hydra.run.dir={run}"]) == 0
    assert main(["train", f"resume={run}", "trainer.steps=40"]) == 0
    assert json.loads((run / "results.json").read_text())["steps"] == 40


# What a resume may change (offrl.cli.train.RESUME_ACCEPTS) and what it refuses: each refused override is one line
# naming the key, exit 2, and leaves every file of the run byte-identical.
REFUSED = ["seed=7", "env=Pendulum-v1", "agent=bc", "agent.hidden_dims=[32,32]", "agent.actor_lr=0.1",
           "dataset=hopper-medium", "dataset.size=100", "dataset.reward_scale=2.0", "trainer=offline_to_online",
           "trainer.mode=online", "trainer.batch_size=64", "seeds=[0,1]", "synthetic.share=0.5"]


def test_resume_accepts_only_its_declared_overrides(tmp_path, small_default_dataset, capsys):
    run = tmp_path / "run"
    assert main(["train", *FAST, "trainer.steps=20", "trainer.eval_every=20", "threads=1", f"hydra.run.dir={run}"]) == 0
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for override in REFUSED:
        capsys.readouterr()
        assert main(["train", f"resume={run}", override]) == 2, override
        err = capsys.readouterr().err.strip().splitlines()
        key = override.split("=")[0]
        assert len(err) == 1 and f"{override} would change the run's {key} " in err[0], (override, err)
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files, override
    # every accepted key, and keys given their run's own value (the original command with resume= added)
    assert main(["train", f"resume={run}", *FAST, "seed=0", "trainer.steps=30", "trainer.eval_every=30",
                 "trainer.eval_episodes=1", "trainer.eval_envs=1", "trainer.log_every=5", "trainer.checkpoint_every=10",
                 "trainer.snapshot_policies=true", "threads=1", "device=cpu", "compile=false",
                 "compile_mode=default"]) == 0
    state = checkpoint.load(run / "checkpoints" / "last.pt")
    assert state["phases"]["offline"]["step"] == 30 and state["config"]["seed"] == 0
    assert state["config"]["trainer"]["eval_episodes"] == 1
