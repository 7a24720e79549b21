"""The Hydra surface: groups compose, multirun sweeps, launcher configs for joblib and SLURM."""

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from offrl.cli import main
from offrl.cli.train import _register_schemas
from tests.conftest import FAST


@pytest.fixture
def composer():
    _register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="offrl.conf", version_base="1.3"):
        yield compose
    GlobalHydra.instance().clear()


def test_default_config_composes(composer):
    cfg = composer("config")
    assert cfg.agent.name == "td3bc" and cfg.dataset.name == "idp-mixed" and cfg.trainer.mode == "offline"
    assert cfg.agent.alpha == 2.5  # the paper's default comes from the dataclass schema


@pytest.mark.parametrize("group,option", [("agent", "bc"), ("trainer", "offline"), ("trainer", "online"),
                                          ("trainer", "offline_to_online"), ("dataset", "hdf5"),
                                          ("dataset", "minari")])
def test_every_group_option_composes(composer, group, option):
    cfg = composer("config", overrides=[f"{group}={option}"])
    assert cfg[group] is not None


@pytest.mark.parametrize("launcher,target", [("local", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launcher_configs_compose(composer, launcher, target):
    cfg = composer("config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 720


@pytest.mark.parametrize("mode", ["orthogonal", "true", "semi"])
def test_odice_update_mode_from_the_command_line(composer, mode):
    # Hydra parses `true` as a boolean; the agent must still get the `true` mode
    from omegaconf import OmegaConf

    from offrl.agents import make_agent

    cfg = composer("config", overrides=["agent=odice", f"agent.update_mode={mode}"])
    agent = make_agent(OmegaConf.to_container(cfg.agent), 5, 2)
    assert agent.cfg.update_mode == mode


def test_multirun_over_seeds(tmp_path, small_default_dataset):
    sweep = tmp_path / "sweep"
    code = main(["train", "-m", *FAST, "trainer.steps=10", "trainer.eval_every=10", "trainer.eval_episodes=1",
                 "seed=0,1", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=seed${seed}"])
    assert code == 0
    seeds = [json.loads((sweep / f"seed{s}" / "results.json").read_text())["seed"] for s in (0, 1)]
    assert seeds == [0, 1]


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path, small_default_dataset):
    sweep = tmp_path / "sweep"
    code = main(["train", "-m", "hydra/launcher=local", "threads=1", *FAST, "trainer.steps=10",
                 "trainer.eval_every=10", "trainer.eval_episodes=1", "agent=bc,td3bc",
                 f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${agent.name}"])
    assert code == 0
    results = {p.parent.name: json.loads(p.read_text()) for p in Path(sweep).glob("*/results.json")}
    assert set(results) == {"bc", "td3bc"}
    pids = {r["pid"] for r in results.values()}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, neither of them this one


def test_online_runs_are_named_after_their_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "agent=sac", "env=Pendulum-v1", "agent.hidden_dims=[8,8]", "trainer.steps=20",
                 "trainer.warmup_steps=10", "trainer.eval_every=20", "trainer.eval_episodes=1", "threads=1"]) == 0
    (run,) = (tmp_path / "runs").glob("*/*")
    assert run.name.endswith("_sac_Pendulum-v1_seed0"), run.name


def test_train_help_lists_groups_options_and_examples(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for needle in ("agents (agent=NAME", "iql", "datasets (dataset=NAME", "trainers (trainer=NAME)",
                   "offline_to_online", "launchers", "threads=N", "resume=DIR", "examples:"):
        assert needle in out, needle
    assert "tuning/" not in out and "schema" not in out  # no internal groups


@pytest.mark.parametrize("command", ["eval", "export", "report", "datasets"])
def test_after_training_commands_help_with_examples(capsys, command):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "%%" not in out and "``" not in out, out
