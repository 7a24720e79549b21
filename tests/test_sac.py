"""SAC (docs/algorithms/sac.md) and the online / offline-to-online trainer paths."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from offrl.agents import make_agent
from offrl.cli import main
from offrl.core import checkpoint
from offrl.core.nets import TanhGaussianActor, tanh_gaussian_log_prob
from offrl.data.store import Batch
from tests.conftest import FAST, keep_gradients


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    mean, log_std = torch.randn(64, 3), torch.randn(64, 3).clamp(-2, 1)
    u = mean + log_std.exp() * torch.randn(64, 3)
    # reference in float64: torch's TanhTransform inverts tanh, which loses precision near |a| = 1
    base = torch.distributions.Normal(mean.double(), log_std.double().exp())
    squashed = torch.distributions.TransformedDistribution(base, [torch.distributions.TanhTransform()])
    expected = squashed.log_prob(torch.tanh(u.double())).sum(-1).float()
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std), expected, rtol=1e-4, atol=1e-4)


def test_actor_samples_are_squashed_and_reparameterised():
    actor = TanhGaussianActor(4, 2, [16])
    obs = torch.randn(128, 4)
    actions, log_prob = actor(obs)
    assert actions.abs().max() < 1 and log_prob.shape == (128,)
    actions.sum().backward()
    assert all(p.grad is not None for p in actor.parameters())
    torch.testing.assert_close(actor.mode(obs), torch.tanh(actor.distribution(obs)[0]))


def _batch(n=128, obs_dim=4, act_dim=2):
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g), torch.zeros(n))


def test_sac_defaults_and_temperature_direction():
    agent = make_agent({"name": "sac", "hidden_dims": [32, 32]}, 4, 2)
    assert agent.target_entropy == -2.0 and agent.log_alpha.item() == pytest.approx(0.0)
    # a fresh policy's entropy is far above -|A|, so dual descent must lower alpha
    for _ in range(20):
        metrics = agent.update(_batch())
    assert metrics["entropy"] > agent.target_entropy and metrics["alpha"] < 1.0


def test_sac_critic_target_is_polyak_updated_every_step():
    torch.manual_seed(0)
    agent = make_agent({"name": "sac", "hidden_dims": [16, 16], "tau": 0.5}, 4, 2)
    before = copy.deepcopy(agent.critic_target)
    agent.update(_batch())
    for t, t0, q in zip(agent.critic_target.parameters(), before.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(t, 0.5 * t0 + 0.5 * q)


def test_actor_step_gives_critic_no_gradient():
    agent = make_agent({"name": "sac", "hidden_dims": [16, 16]}, 4, 2)
    keep_gradients(agent)
    agent.policy_step(_batch())
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.grad is not None for p in agent.actor.parameters())


def test_online_replay_skips_autoreset_steps(tmp_path):
    """Pendulum's dynamics tie each transition together: theta' = theta + thdot' * dt. A transition that
    paired an episode's last state with the next episode's reset state would break that relation."""
    run = tmp_path / "run"
    assert main(["train", "agent=sac", "env=Pendulum-v1", "agent.hidden_dims=[16,16]", "trainer.steps=450",
                 "trainer.num_envs=2", "trainer.warmup_steps=10000", "trainer.eval_every=450",
                 "trainer.eval_episodes=1", "trainer.checkpoint_every=450", f"hydra.run.dir={run}"]) == 0
    replay = checkpoint.load(run / "checkpoints" / "last.pt")["phases"]["online"]["replay"]
    obs, next_obs = replay["obs"].numpy(), replay["next_obs"].numpy()
    assert replay["size"] == 450 - 2  # each sub-env truncated once at 200 steps; its autoreset step is skipped
    dtheta = np.arctan2(next_obs[:, 1], next_obs[:, 0]) - np.arctan2(obs[:, 1], obs[:, 0])
    dtheta = (dtheta + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(dtheta, next_obs[:, 2] * 0.05, atol=1e-4)
    assert replay["episode_ends"].sum() == 2 and replay["dones"].sum() == 0  # truncations, not terminals


def test_sac_learns_pendulum(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "agent=sac", "env=Pendulum-v1", "trainer.steps=6000", "trainer.warmup_steps=1000",
                 "trainer.eval_every=6000", "trainer.eval_episodes=5", "seed=0", f"hydra.run.dir={run}"]) == 0
    results = json.loads((run / "results.json").read_text())
    # uniform random actions average about -1200 on Pendulum-v1; a learnt swing-up is above -400
    assert results["return_mean"] > -400, results
    assert results["gradient_steps"] == 5001


def test_online_run_resumes_with_its_replay_buffer(tmp_path):
    run = tmp_path / "run"
    common = ["agent=sac", "env=Pendulum-v1", "agent.hidden_dims=[16,16]", "trainer.warmup_steps=100",
              "trainer.eval_episodes=1", "trainer.checkpoint_every=100"]
    assert main(["train", *common, "trainer.steps=200", "trainer.eval_every=200", f"hydra.run.dir={run}"]) == 0
    assert main(["train", f"resume={run}", "trainer.steps=300"]) == 0
    state = checkpoint.load(run / "checkpoints" / "last.pt")
    # the env state was saved too: the episode truncated at step 200 autoresets at step 201 (no row)
    online = state["phases"]["online"]
    assert online["step"] == 300 and online["replay"]["size"] == 299
    assert state["update_step"] == 300 - 100 + 1  # one update per env step from the 100th on


def test_offline_to_online_pretrains_then_mixes(tmp_path, small_default_dataset):
    run = tmp_path / "run"
    assert main(["train", "agent=td3bc", "trainer=offline_to_online", *FAST, "trainer.pretrain_steps=50",
                 "trainer.steps=100", "trainer.eval_every=100", "trainer.eval_episodes=1",
                 "trainer.updates_per_step=2", f"hydra.run.dir={run}"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == 100 and results["gradient_steps"] == 50 + 200
