"""The trainer's contract with agents: NaN stops the run, keeping the last good checkpoint."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from offrl.agents.base import Agent, AgentConfig
from offrl.core import checkpoint
from offrl.core.errors import TrainingDiverged
from offrl.data.d4rl import read_d4rl_hdf5
from offrl.data.store import ObsNormalizer, TransitionStore
from offrl.training.trainer import Trainer, TrainerConfig, _crossed


@dataclass
class ExplodingConfig(AgentConfig):
    name: str = "exploding"
    nan_at: int = 35


class ExplodingAgent(Agent):
    """Returns a finite loss until update ``nan_at``, then NaN (as a diverging critic would)."""

    def __init__(self, cfg, obs_dim, act_dim):
        super().__init__(cfg, obs_dim, act_dim)
        self.policy = torch.nn.Linear(obs_dim, act_dim)
        self.optimizers = {"policy": torch.optim.SGD(self.policy.parameters(), lr=0.0)}

    def update(self, batch):
        self.num_updates += 1
        value = float("nan") if self.num_updates >= self.cfg.nan_at else 1.0
        return {"loss": torch.tensor(value)}

    def act(self, obs, deterministic=True):
        return torch.tanh(self.policy(obs))


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, small_default_dataset):
    data = read_d4rl_hdf5(small_default_dataset)
    agent = ExplodingAgent(ExplodingConfig(), data.obs_dim, data.act_dim)
    cfg = TrainerConfig(steps=100, log_every=10, checkpoint_every=10, eval_every=1000, eval_episodes=1)
    trainer = Trainer(cfg, agent, tmp_path, 0, ObsNormalizer(data.obs_dim), data.info, TransitionStore.from_data(data))
    with pytest.raises(TrainingDiverged, match=r"step 40: non-finite training metric\(s\) \{'loss': nan\}"):
        trainer.run()
    kept = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert kept["phases"]["offline"]["step"] == 30  # the checkpoint at 40 was refused, the one at 30 survives


def test_interval_crossing():
    assert _crossed(999, 1000, 1000) and not _crossed(1000, 1001, 1000)
    assert _crossed(998, 1002, 1000)  # vector envs step several at a time
    assert not _crossed(0, 999, 1000)


def test_evaluation_reports_normalized_scores(tmp_path, small_default_dataset):
    data = read_d4rl_hdf5(small_default_dataset)
    agent = ExplodingAgent(ExplodingConfig(nan_at=10**9), data.obs_dim, data.act_dim)
    cfg = TrainerConfig(steps=5, eval_every=5, eval_episodes=3, eval_envs=2)
    (results,) = Trainer(cfg, agent, tmp_path, 0, ObsNormalizer(data.obs_dim), data.info,
                         TransitionStore.from_data(data)).run()  # one member: the lone agent
    assert len(results["eval_history"]) == 1 and results["steps"] == 5
    expected = 100 * (results["return_mean"] - data.info.ref_min_score) / (
        data.info.ref_max_score - data.info.ref_min_score)
    assert results["normalized_score"] == pytest.approx(expected)
    assert np.isfinite(results["return_std"])


def test_training_flushes_subnormal_floats_on_cpu():
    """run.train and diffusion training flush subnormals (Adam state underflowing into them made O-DICE ~10x
    slower late in a run); the switch is process-wide."""
    from offrl.core.runtime import flush_denormals

    if not torch.set_flush_denormal(False):  # the CPU has no flush-to-zero mode (not x86 with SSE3)
        pytest.skip("no flush-to-zero on this CPU")
    assert float(torch.tensor([1e-39]) * 1.0) > 0.0
    flush_denormals()
    assert float(torch.tensor([1e-39]) * 1.0) == 0.0
