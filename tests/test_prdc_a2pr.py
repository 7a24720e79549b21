"""PRDC (docs/algorithms/prdc.md) and A2PR (docs/algorithms/a2pr.md): the algorithm, not just that it runs."""

import numpy as np
import pytest
import torch

from offrl.agents import make_agent
from offrl.agents.a2pr import advantage_target
from offrl.core.neighbors import NearestNeighbors
from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.store import TransitionStore
from tests.conftest import keep_gradients


def _store(n=500, obs_dim=4, act_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    data = OfflineData(obs, rng.uniform(-1, 1, (n, act_dim)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                       obs + 0.1, np.zeros(n, bool), np.zeros(n, bool), DatasetInfo("t", "test", "test"))
    return TransitionStore.from_data(data)


@pytest.mark.parametrize("spread", [0.01, 1.0, 10.0])
def test_kdtree_and_brute_force_find_the_same_neighbours(spread):
    g = torch.Generator().manual_seed(1)
    points = torch.randn(5000, 6, generator=g)
    keys = points[torch.randint(0, 5000, (300,), generator=g)] + spread * torch.randn(300, 6, generator=g)
    tree = NearestNeighbors(points, "kdtree").query(keys)
    brute = NearestNeighbors(points, "torch", chunk_size=1024).query(keys)
    assert torch.equal(tree, brute)
    exact = torch.cdist(keys.double(), points.double()).argmin(1)
    assert torch.equal(tree, exact)


def test_prdc_with_huge_beta_reduces_to_td3bc_target():
    store = _store()
    agent = make_agent({"name": "prdc", "hidden_dims": [16, 16], "beta": 1e4}, 4, 2)
    agent.attach_dataset(store)
    batch = store.sample(64)
    pi = torch.rand(64, 2) * 2 - 1  # far from the dataset actions
    torch.testing.assert_close(agent.nearest_action(batch, pi), batch.actions)


def test_prdc_with_tiny_beta_picks_the_closest_dataset_action():
    store = _store()
    agent = make_agent({"name": "prdc", "hidden_dims": [16, 16], "beta": 0.0}, 4, 2)
    agent.attach_dataset(store)
    pi = torch.tensor([[0.3, -0.2]])
    target = agent.nearest_action(store.sample(1), pi)
    nearest = store.actions[(store.actions - pi).norm(dim=1).argmin()]
    torch.testing.assert_close(target[0], nearest)


def test_prdc_update_logs_neighbour_diagnostics_and_gives_the_target_no_gradient():
    store = _store()
    agent = make_agent({"name": "prdc", "hidden_dims": [16, 16]}, 4, 2)
    agent.attach_dataset(store)
    agent.update(store.sample(32))
    metrics = agent.update(store.sample(32))
    assert {"neighbor_distance", "neighbor_action_gap", "lambda", "bc_loss"} <= metrics.keys()
    assert metrics["neighbor_distance"] >= 0


def test_a2pr_target_selection_on_a_hand_built_batch():
    v = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0])
    q_vae = torch.tensor([1.0, -1.0, 2.0, -2.0, 0.0])
    q_data = torch.tensor([0.5, 1.0, 2.0, -1.0, -0.5])
    vae_action = torch.full((5, 1), 9.0)
    data_action = torch.full((5, 1), -9.0)
    target, weight, use_vae = advantage_target(q_vae, q_data, v, vae_action, data_action, mask=0.4)
    # A_vae >= A_data selects the VAE action (ties included)
    assert use_vae.tolist() == [True, False, True, False, True]
    assert target[:, 0].tolist() == [9.0, -9.0, 9.0, -9.0, 9.0]
    # weight = mask * (1[Q_vae >= v] + 1[Q_data > v]): 0, mask or 2 mask
    torch.testing.assert_close(weight, torch.tensor([0.8, 0.4, 0.8, 0.0, 0.4]))


def _a2pr(**changes):
    torch.manual_seed(0)
    cfg = {"name": "a2pr", "hidden_dims": [16, 16], "critic_hidden_dims": [16, 16], "vae_hidden_dims": [16],
           **changes}
    return make_agent(cfg, 4, 2)


def test_a2pr_networks_match_the_official_code():
    agent = make_agent({"name": "a2pr"}, 11, 3)
    assert sum(isinstance(m, torch.nn.Linear) for m in agent.actor.modules()) == 4  # 3 hidden + output
    assert len(agent.critic.net.layers) == 5 and agent.critic.n == 2  # 4 hidden + output, twin
    assert sum(isinstance(m, torch.nn.Linear) for m in agent.value.modules()) == 5
    assert agent.vae.encoder[0].out_features == 750 and agent.vae.encoder[-1].out_features == 2 * 2 * 3


def test_a2pr_actor_step_trains_only_the_actor():
    store = _store()
    batch = store.sample(64)
    agent = _a2pr()
    v = agent.value(batch.obs).squeeze(-1).detach()
    keep_gradients(agent)
    agent.advantage_actor_step(batch, v, batch.actions)
    assert all(p.grad is not None for p in agent.actor.parameters())
    assert all(p.grad is None for p in agent.critic.parameters())  # the actor step trains only the actor
    assert all(p.grad is None for p in agent.vae.parameters())


def test_a2pr_undetached_target_sends_gradient_through_the_vae():
    store = _store()
    batch = store.sample(64)
    grads = {}
    for detach in (False, True):
        agent = _a2pr(detach_target=detach, alpha=0.0)  # BC term only
        v = torch.full((64,), -1e6)  # every advantage positive: all targets are VAE actions, weight 2 mask
        keep_gradients(agent, step=False)  # keep parameters, inspect gradients
        torch.manual_seed(1)
        agent.advantage_actor_step(batch, v, batch.actions)
        grads[detach] = torch.cat([p.grad.flatten() for p in agent.actor.parameters()])
    assert not torch.allclose(grads[False], grads[True])


def test_a2pr_update_runs_every_component():
    store = _store()
    agent = _a2pr()
    agent.update(store.sample(32))
    metrics = agent.update(store.sample(32))
    for key in ("critic_loss", "value_loss", "vae_loss", "vae_positive_fraction", "actor_loss",
                "vae_target_fraction", "chosen_advantage", "bc_weight"):
        assert torch.isfinite(metrics[key]), key


def test_tuning_configs_set_per_dataset_values():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from offrl.cli.train import _register_schemas

    _register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="offrl.conf", version_base="1.3"):
        assert compose("config", ["agent=prdc", "dataset=halfcheetah-medium"]).agent.alpha == 40.0
        assert compose("config", ["agent=prdc", "dataset=hopper-medium"]).agent.alpha == 2.5
        assert compose("config", ["agent=prdc", "dataset=halfcheetah-medium", "agent.alpha=3"]).agent.alpha == 3.0
    GlobalHydra.instance().clear()
