"""BC and TD3+BC update rules, checked against docs/algorithms/bc.md and td3bc.md, not just that they run."""

import copy

import pytest
import torch
import torch.nn.functional as F

from offrl.agents import agent_config, make_agent
from offrl.agents.td3bc import TD3BCConfig
from offrl.core.errors import ConfigError
from offrl.core.nets import EnsembleCritic
from offrl.data.store import Batch


def _batch(n=64, obs_dim=5, act_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.1).float())


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_ensemble_critic_members_are_independent_linear_stacks():
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, n=2, hidden=[8, 8])
    obs, act = torch.randn(4, 5), torch.randn(4, 2)
    q = critic(obs, act)
    assert q.shape == (2, 4)
    x = torch.cat([obs, act], -1)
    for j in range(2):
        h = x
        for i, layer in enumerate(critic.net.layers):
            h = h @ layer.weight[j] + layer.bias[j]
            h = torch.relu(h) if i < 2 else h
        torch.testing.assert_close(q[j], h.squeeze(-1))
    torch.testing.assert_close(critic(obs, act, members=slice(0, 1))[0], q[0])


@pytest.mark.parametrize("after", [True, False])
@pytest.mark.parametrize("rows", [3, 40])  # fewer rows than the layers' outputs (8), and more: the affine folded
def test_ensemble_layer_norm_members_match_a_per_member_layer_norm(rows, after):
    """Each member's LayerNorm (before or after the activation) with its own affine parameters, forward and
    gradients, whichever way the affine part is computed (on the rows, or folded into the next layer's weights)."""
    torch.manual_seed(0)
    critic = EnsembleCritic(5, 2, n=2, hidden=[8, 8], layer_norm=True, norm_after_activation=after).double()
    with torch.no_grad():
        for gamma, beta in zip(critic.net.norm_weights, critic.net.norm_biases):
            gamma.uniform_(0.5, 1.5)
            beta.normal_()
    x = torch.randn(rows, 7, dtype=torch.float64)
    q = critic(x[:, :5], x[:, 5:])
    reference = []
    for j in range(2):
        h = x
        for i, layer in enumerate(critic.net.layers):
            h = h @ layer.weight[j] + layer.bias[j]
            if i < 2:
                gamma, beta = critic.net.norm_weights[i][j, 0], critic.net.norm_biases[i][j, 0]
                h = (F.layer_norm(torch.relu(h), (8,), gamma, beta) if after
                     else torch.relu(F.layer_norm(h, (8,), gamma, beta)))
        reference.append(h.squeeze(-1))
    reference = torch.stack(reference)
    torch.testing.assert_close(q, reference)
    weights = torch.randn(2, rows, dtype=torch.float64)
    params = list(critic.parameters())
    for got, want in zip(torch.autograd.grad((q * weights).sum(), params),
                         torch.autograd.grad((reference * weights).sum(), params)):
        torch.testing.assert_close(got, want)


def test_td3bc_actor_and_targets_move_only_every_policy_freq_steps():
    torch.manual_seed(0)
    agent = make_agent(TD3BCConfig(hidden_dims=[32, 32]), 5, 2)
    actor, target_actor, target_critic = (_snapshot(m) for m in (agent.actor, agent.actor_target, agent.critic_target))
    critic = _snapshot(agent.critic)
    metrics = agent.update(_batch())
    assert _changed(critic, agent.critic)
    assert not _changed(actor, agent.actor) and not _changed(target_actor, agent.actor_target)
    assert not _changed(target_critic, agent.critic_target)
    assert "actor_loss" not in metrics
    metrics = agent.update(_batch(seed=1))
    assert _changed(actor, agent.actor) and _changed(target_actor, agent.actor_target)
    assert _changed(target_critic, agent.critic_target)
    assert {"actor_loss", "bc_loss", "lambda", "critic_loss"} <= metrics.keys()
    assert all(not v.requires_grad for v in metrics.values())


def test_td3bc_targets_are_polyak_averages():
    torch.manual_seed(0)
    agent = make_agent(TD3BCConfig(hidden_dims=[16, 16], tau=0.1), 5, 2)
    old_target = copy.deepcopy(agent.actor_target)
    agent.update(_batch())
    agent.update(_batch(seed=1))
    for t_new, t_old, p in zip(agent.actor_target.parameters(), old_target.parameters(), agent.actor.parameters()):
        torch.testing.assert_close(t_new, 0.9 * t_old + 0.1 * p)


def test_td3bc_actor_loss_matches_the_paper():
    torch.manual_seed(0)
    agent = make_agent(TD3BCConfig(hidden_dims=[16, 16], alpha=2.5), 5, 2)
    batch = _batch()
    pi = agent.actor(batch.obs)
    q1 = agent.critic(batch.obs, pi)[0]
    lmbda = 2.5 / q1.abs().mean()
    expected = -lmbda * q1.mean() + F.mse_loss(pi, batch.actions)
    agent.num_updates = 1  # the next update runs the actor step on the same parameters
    critic_before = copy.deepcopy(agent.critic)
    metrics = agent.actor_step(batch, batch.actions)
    torch.testing.assert_close(metrics["actor_loss"], expected.detach())
    # the actor step leaves critic weights untouched and gives them no gradient
    for a, b in zip(agent.critic.parameters(), critic_before.parameters()):
        assert torch.equal(a, b) and a.grad is None


def test_td3bc_critic_target_uses_min_of_twin_targets_and_terminal_mask():
    torch.manual_seed(0)
    agent = make_agent(TD3BCConfig(hidden_dims=[16, 16], policy_noise=0.0, discount=0.5), 5, 2)
    batch = _batch()
    with torch.no_grad():
        next_q = agent.critic_target(batch.next_obs, agent.actor_target(batch.next_obs)).min(0).values
        y = batch.rewards + 0.5 * (1 - batch.dones) * next_q
        q = agent.critic(batch.obs, batch.actions)
        expected = F.mse_loss(q[0], y) + F.mse_loss(q[1], y)
    _, target = agent.td_target(batch, torch.zeros_like(batch.actions))
    metrics = agent.q_step(batch, target)
    torch.testing.assert_close(metrics["critic_loss"], expected)
    torch.testing.assert_close(target, y)


def test_bc_regresses_onto_dataset_actions():
    torch.manual_seed(0)
    agent = make_agent({"name": "bc", "hidden_dims": [32, 32], "lr": 1e-2}, 5, 2)
    batch = _batch(256)
    first = agent.update(batch)["bc_loss"]
    for _ in range(400):  # 0.04x the first loss here; at 200 updates it was 0.1004x on one CPU, 0.099x on another
        last = agent.update(batch)["bc_loss"]
    assert last < 0.1 * first


def test_act_is_deterministic_unless_asked():
    agent = make_agent(TD3BCConfig(hidden_dims=[16, 16]), 5, 2)
    obs = torch.randn(3, 5)
    torch.testing.assert_close(agent.act(obs), agent.act(obs))
    noisy = agent.act(obs, deterministic=False)
    assert not torch.equal(noisy, agent.act(obs)) and noisy.abs().max() <= 1


def test_agent_config_rejects_unknown_keys_and_types():
    with pytest.raises(ConfigError, match="alpah"):
        agent_config({"name": "td3bc", "alpah": 1.0})
    with pytest.raises(ConfigError, match="policy_freq"):
        agent_config({"name": "td3bc", "policy_freq": "often"})
    with pytest.raises(ConfigError, match="unknown"):
        agent_config({"name": "dqn"})


def test_compiled_update_matches_eager():
    torch.manual_seed(0)
    eager = make_agent({"name": "bc", "hidden_dims": [16, 16]}, 5, 2)
    compiled = copy.deepcopy(eager)
    compiled.enable_compile()
    for seed in range(3):
        a, b = eager.update(_batch(seed=seed)), compiled.update(_batch(seed=seed))
        torch.testing.assert_close(a["bc_loss"], b["bc_loss"], rtol=1e-5, atol=1e-6)
