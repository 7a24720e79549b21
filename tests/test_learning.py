"""A short real training run: BC and TD3+BC must clearly beat the uniform-random policy on the
default dataset (normalized score 0 is random by definition)."""

import json

import pytest

from offrl.cli import main
from tests.conftest import FAST


@pytest.mark.parametrize("agent,steps", [("bc", 1500), ("td3bc", 3000)])
def test_agent_beats_random_on_the_default_dataset(tmp_path, small_default_dataset, agent, steps):
    run = tmp_path / agent
    code = main(["train", f"agent={agent}", *FAST, "trainer.eval_episodes=5", f"trainer.steps={steps}",
                 f"trainer.eval_every={steps}", "seed=1", f"hydra.run.dir={run}"])
    assert code == 0
    results = json.loads((run / "results.json").read_text())
    # random scores 0; the noisy behaviour data averages well above it
    assert results["normalized_score"] > 30, results
