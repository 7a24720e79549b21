"""PMOE (docs/algorithms/pmoe.md): the mixture policy's densities and sampling, and the estimator's gradient paths."""

import pytest
import torch

from offrl.agents import make_agent
from offrl.core.nets import tanh_gaussian_log_prob
from offrl.core.policies import GaussianMixturePolicy
from offrl.data.store import Batch
from tests.conftest import keep_gradients


def _policy(k=3, seed=0):
    torch.manual_seed(seed)
    policy = GaussianMixturePolicy(4, 2, num_experts=k, hidden=[16, 16])
    with torch.no_grad():  # spread the experts and the router so the test sees distinct components
        policy.means.weight.normal_(0, 0.5)
        policy.router.weight.normal_(0, 1.0)
    return policy


def test_mixture_log_prob_matches_a_brute_force_sum():
    policy = _policy()
    obs, actions = torch.randn(32, 4), torch.rand(32, 2) * 1.8 - 0.9
    mean, log_std, logits = policy.heads(obs)
    weights = logits.softmax(-1)
    brute = torch.zeros(32, dtype=torch.float64)
    for k in range(3):
        base = torch.distributions.Normal(mean[:, k].double(), log_std[:, k].double().exp())
        squashed = torch.distributions.TransformedDistribution(base, [torch.distributions.TanhTransform()])
        brute += weights[:, k].double() * squashed.log_prob(actions.double()).sum(-1).exp()
    torch.testing.assert_close(policy.mixture_log_prob(obs, actions).double(), brute.log(), rtol=1e-4, atol=1e-4)


def test_component_log_probs_are_each_experts_tanh_gaussian_density():
    policy = _policy()
    obs = torch.randn(8, 4)
    torch.manual_seed(1)
    actions, log_probs, _ = policy.components(obs)
    mean, log_std, _ = policy.heads(obs)
    u = torch.atanh(actions.double())
    torch.testing.assert_close(log_probs.double(), tanh_gaussian_log_prob(u, mean.double(), log_std.double()),
                               rtol=1e-3, atol=1e-3)


def test_sampled_experts_follow_the_router_weights():
    policy = _policy(k=3)
    obs = torch.randn(1, 4).expand(20_000, 4)
    with torch.no_grad():
        weights = policy.heads(obs[:1])[2].softmax(-1)[0]
        policy.log_stds.bias.fill_(-20.0)  # near-deterministic experts: the sample reveals its expert
        policy.log_stds.weight.zero_()
        means = torch.tanh(policy.heads(obs[:1])[0][0])  # (K, A)
        torch.manual_seed(0)
        actions, _ = policy(obs)
    chosen = torch.cdist(actions, means).argmin(1)
    frequency = torch.bincount(chosen, minlength=3).float() / len(chosen)
    torch.testing.assert_close(frequency, weights, atol=0.015, rtol=0)


def _batch(n=16):
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(n, 4, generator=g), torch.rand(n, 2, generator=g) * 2 - 1, torch.randn(n, generator=g),
                 torch.randn(n, 4, generator=g), torch.zeros(n))


def test_frequency_estimator_gradients_reach_only_the_best_expert_and_the_router_only_via_its_loss():
    torch.manual_seed(0)
    agent = make_agent({"name": "pmoe", "hidden_dims": [16, 16], "num_experts": 3}, 4, 2)
    batch = _batch(1)
    keep_gradients(agent, step=False)
    torch.manual_seed(5)
    actions, _, _ = agent.actor.components(batch.obs)
    torch.manual_seed(5)
    agent.policy_step(batch)
    with torch.no_grad():
        q = agent.critic(batch.obs.expand(3, -1), actions[0]).min(0).values
    best = int(q.argmax())
    grad = agent.actor.means.weight.grad.view(3, 2, -1)
    for k in range(3):
        assert (grad[k].abs().sum() > 0) == (k == best)
    # the router's gradient is the one-hot regression's, and it never reaches the trunk through the router
    weights = agent.actor.heads(batch.obs)[2].softmax(-1)
    expected = torch.autograd.grad(torch.nn.functional.mse_loss(weights, torch.eye(3)[[best]]),
                                   agent.actor.router.weight)[0]
    torch.testing.assert_close(agent.actor.router.weight.grad, expected)


def test_router_loss_does_not_reach_the_trunk():
    policy = _policy()
    weights = policy.heads(torch.randn(5, 4))[2].softmax(-1)
    weights.sum().backward()
    assert all(p.grad is None for p in policy.trunk.parameters())


@pytest.mark.parametrize("estimator", ["frequency", "gumbel", "score_function"])
def test_every_estimator_updates_experts_and_router(estimator):
    torch.manual_seed(0)
    agent = make_agent({"name": "pmoe", "hidden_dims": [16, 16], "estimator": estimator}, 4, 2)
    router_before = agent.actor.router.weight.detach().clone()
    means_before = agent.actor.means.weight.detach().clone()
    metrics = agent.update(_batch(64))
    assert not torch.equal(router_before, agent.actor.router.weight)
    assert not torch.equal(means_before, agent.actor.means.weight)
    assert {"router_entropy", "expert0_usage", "expert3_action_std"} <= metrics.keys()
    assert torch.isfinite(metrics["actor_loss"])


def test_deterministic_action_is_the_heaviest_experts_mean():
    policy = _policy()
    obs = torch.randn(6, 4)
    mean, _, logits = policy.heads(obs)
    expected = torch.tanh(mean[torch.arange(6), logits.argmax(-1)])
    torch.testing.assert_close(policy.mode(obs), expected)
