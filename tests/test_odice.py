"""O-DICE (docs/algorithms/odice.md): the orthogonal-gradient mathematics and the policy weights."""

import pytest
import torch

from offrl.agents import make_agent
from offrl.agents.odice import ODICEConfig, combine_gradients, dot, f_star, policy_weights
from offrl.data.store import Batch
from tests.conftest import keep_gradients


def _batch(n=64, obs_dim=5, act_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.1).float())


def _agent(**changes):
    torch.manual_seed(0)
    return make_agent({"name": "odice", "hidden_dims": [32, 32], "value_hidden_dims": [32, 32], **changes}, 5, 2)


def _gradients(agent, batch):
    v, forward, backward = agent.residuals(batch)
    cfg, params = agent.cfg, list(agent.value.parameters())
    g_f = torch.autograd.grad(cfg.lam * f_star(forward, cfg.divergence).mean(), params, retain_graph=True)
    g_b = torch.autograd.grad(cfg.lam * cfg.eta * f_star(backward, cfg.divergence).mean(), params, retain_graph=True)
    g_v = torch.autograd.grad((1 - cfg.lam) * v.mean(), params)
    return g_v, g_f, g_b


def test_projected_backward_gradient_is_orthogonal_to_the_forward_gradient():
    agent = _agent()
    g_v, g_f, g_b = _gradients(agent, _batch())
    ortho = combine_gradients([torch.zeros_like(x) for x in g_v], g_f, g_b, "orthogonal")
    semi = combine_gradients([torch.zeros_like(x) for x in g_v], g_f, g_b, "semi")
    projected_backward = [o - s for o, s in zip(ortho, semi)]  # = g_b - c g_f
    cosine = dot(projected_backward, g_f) / torch.sqrt(dot(projected_backward, projected_backward) * dot(g_f, g_f))
    assert abs(cosine.item()) < 1e-5
    assert abs(dot(g_f, g_b).item()) > 1e-6  # the raw gradients were not orthogonal to begin with


def test_orthogonal_equals_true_for_orthogonal_gradients_and_semi_plus_projection_otherwise():
    g_v = [torch.tensor([0.5, 0.5, 0.5])]
    g_f = [torch.tensor([1.0, 0.0, 0.0])]
    g_b = [torch.tensor([0.0, 2.0, 0.0])]
    torch.testing.assert_close(combine_gradients(g_v, g_f, g_b, "orthogonal")[0],
                               combine_gradients(g_v, g_f, g_b, "true")[0])
    g_b = [torch.tensor([3.0, 2.0, 0.0])]  # has a component 3 along g_f
    ortho = combine_gradients(g_v, g_f, g_b, "orthogonal")[0]
    semi = combine_gradients(g_v, g_f, g_b, "semi")[0]
    torch.testing.assert_close(ortho, semi + torch.tensor([0.0, 2.0, 0.0]))
    torch.testing.assert_close(combine_gradients(g_v, g_f, g_b, "true")[0], torch.tensor([4.5, 2.5, 0.5]))


@pytest.mark.parametrize("mode", ["orthogonal", "true", "semi"])
def test_value_step_applies_the_mode_gradient(mode):
    agent = _agent(update_mode=mode)
    batch = _batch()
    expected = combine_gradients(*_gradients(agent, batch), mode)
    keep_gradients(agent, step=False)  # keep parameters, inspect the gradient it applied
    agent.value_step(batch)
    for p, g in zip(agent.value.parameters(), expected):
        torch.testing.assert_close(p.grad, g)


def test_pearson_f_star_and_policy_weights_follow_the_official_code():
    y = torch.tensor([-3.0, -2.0, -1.0, 0.0, 0.5, 150.0])
    expected = torch.tensor([-1.0, -1.0, -0.75, 0.0, 0.5625, 150 + 150**2 / 4])  # y + y^2/4 for y >= -2, else -1
    torch.testing.assert_close(f_star(y, "pearson_chi2"), expected)
    torch.testing.assert_close(f_star(y, "reverse_kl"), torch.exp(y - 1))
    cfg = ODICEConfig()
    torch.testing.assert_close(policy_weights(y, cfg), torch.tensor([0.0, 0.0, 0.0, 0.0, 0.5, 100.0]))
    cfg.policy_weight = "f_prime_inverse"
    torch.testing.assert_close(policy_weights(y, cfg), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.25, 76.0]))


def test_policy_loss_is_the_weighted_negative_log_likelihood():
    agent = _agent()
    batch = _batch()
    residual = torch.stack([torch.linspace(-1, 2, 64), torch.linspace(2, -1, 64)])
    weight = policy_weights(residual, agent.cfg).mean(0)
    expected = (weight * -agent.actor.log_prob(batch.obs, batch.actions)).mean()
    metrics = agent.actor_step(batch, residual)
    torch.testing.assert_close(metrics["actor_loss"], expected.detach())


def test_networks_and_defaults_match_the_official_code():
    agent = make_agent({"name": "odice"}, 11, 3)
    assert agent.value.n == 2 and agent.value.norm_weights is not None  # twin V with LayerNorm
    assert agent.actor.mean[0].out_features == 1024 and agent.actor.log_std.shape == (3,)
    assert agent.optimizers["actor"].defaults["weight_decay"] == 1e-4
    assert agent.optimizers["value"].defaults["weight_decay"] == 0
    assert agent.cfg.lam == 0.6 and agent.cfg.eta == 1.0 and not agent.cfg.normalize_states


def test_target_value_is_an_ema_and_eval_action_is_the_clipped_mean():
    agent = _agent(tau=0.5)
    before = [p.detach().clone() for p in agent.value_target.parameters()]
    agent.update(_batch())
    for t, t0, p in zip(agent.value_target.parameters(), before, agent.value.parameters()):
        torch.testing.assert_close(t, 0.5 * t0 + 0.5 * p)
    obs = torch.randn(8, 5) * 100
    torch.testing.assert_close(agent.act(obs), agent.actor.mean(obs).clamp(-1, 1))


def test_unknown_mode_is_a_config_error():
    from offrl.core.errors import ConfigError

    with pytest.raises(ConfigError, match="update_mode='sideways'"):
        _agent(update_mode="sideways")


@pytest.mark.parametrize("lam", [0.4, 0.6])
def test_semi_gradient_fixed_point_residual_is_two_one_minus_two_lambda_over_lambda(lam):
    # Setting the bias gradient of (1 - lam) E V(s) + lam E f*(d) to zero with f*'(d) = 1 + d/2 gives
    # E[d_fwd] = 2 (1 - 2 lam) / lam: -0.67 at the default lam = 0.6 (most policy weights max(d, 0) are
    # then 0), +1 at lam = 0.4. gamma = 0 makes the residual r - V(s), so the fixed point is reached quickly.
    agent = _agent(update_mode="semi", lam=lam, discount=0.0, value_lr=3e-3)
    batch = _batch(n=256)
    batch = batch._replace(rewards=0.1 * batch.rewards)  # all residuals stay in f*'s quadratic part (d > -2)
    for _ in range(500):
        agent.value_step(batch)
    _, forward, _ = agent.residuals(batch)
    assert forward.mean().item() == pytest.approx(2 * (1 - 2 * lam) / lam, abs=0.02)
