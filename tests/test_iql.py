"""IQL (Kostrikov et al. 2022): expectile value step, V(s') TD targets, AWR policy step, checked by hand;
and the agents' ``log_prob`` interface (policy-guided diffusion's guidance signal)."""

import json
import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from offrl.agents import AGENTS, make_agent
from offrl.agents.iql import cosine_lr, expectile_loss
from offrl.cli import main
from offrl.core.errors import ConfigError
from offrl.data.store import Batch
from tests.conftest import FAST, keep_gradients

torch.set_num_threads(1)


def _batch(n=64, obs_dim=5, act_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.1).float())


def _agent(name="iql", obs_dim=5, act_dim=2, **changes):
    torch.manual_seed(0)
    return make_agent({"name": name, "hidden_dims": [32, 32], **changes}, obs_dim, act_dim)


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _unchanged(before, module):
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


class SumOfObs(nn.Module):
    """V(s) = sum_i s_i: a value function whose outputs can be computed by hand."""

    def forward(self, obs):
        return obs.sum(-1, keepdim=True)


class FixedQ(nn.Module):
    """Two Q heads returning fixed samples q and q + 1 (so that min_j Q_j = q), whatever (s, a)."""

    def __init__(self, q):
        super().__init__()
        self.register_buffer("q", q)

    def forward(self, obs, actions, members=slice(None)):
        return torch.stack([self.q + 1.0, self.q])[members]


def test_expectile_loss_by_hand():
    diff = torch.tensor([2.0, -1.0, 0.5, -3.0])
    # weights 0.7 for positive, 0.3 for negative residuals: (0.7*4 + 0.3*1 + 0.7*0.25 + 0.3*9) / 4
    assert expectile_loss(diff, 0.7).item() == pytest.approx((2.8 + 0.3 + 0.175 + 2.7) / 4)
    torch.testing.assert_close(expectile_loss(diff, 0.5), 0.5 * diff.pow(2).mean())
    torch.testing.assert_close(expectile_loss(diff, 0.9),
                               (torch.abs(0.9 - (diff < 0).float()) * diff.pow(2)).mean())


def _expectile(q, tau):
    """The tau-expectile m of the samples: sum_i |tau - 1(q_i < m)| (q_i - m) = 0, by fixed-point iteration."""
    m = q.mean()
    for _ in range(200):
        w = torch.where(q < m, 1 - tau, tau)
        m = (w * q).sum() / w.sum()
    return m.item()


@pytest.mark.parametrize("expectile", [0.5, 0.9])
def test_value_step_alone_converges_to_the_expectile_of_q(expectile):
    g = torch.Generator().manual_seed(3)
    q = torch.randn(512, generator=g).exp()  # skewed samples: mean 1.6, 0.9-expectile about 2.9
    agent = _agent(expectile=expectile, value_lr=1e-2)
    agent.critic_target = FixedQ(q)
    batch = _batch(512)._replace(obs=torch.zeros(512, 5))  # one state: V is one number
    for _ in range(600):
        agent.value_step(batch)
    v = agent.value(torch.zeros(1, 5)).item()
    assert v == pytest.approx(_expectile(q, expectile), abs=0.02)
    if expectile == 0.5:
        assert v == pytest.approx(q.mean().item(), abs=0.02)
    else:
        assert v > q.mean().item() + 0.5


def test_critic_target_is_reward_plus_discounted_v_of_next_state_masked_by_done():
    agent = _agent(discount=0.5)
    agent.value = SumOfObs()
    batch = Batch(obs=torch.randn(4, 5), actions=torch.rand(4, 2) * 2 - 1,
                  rewards=torch.tensor([1.0, 2.0, 3.0, 4.0]),
                  next_obs=torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0, 0.0],
                                         [0.0, 0.0, -2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0]]),
                  dones=torch.tensor([0.0, 1.0, 0.0, 0.0]))
    y = torch.tensor([1 + 0.5 * 2, 2.0, 3 + 0.5 * -2, 4 + 0.5 * 4])  # V(s') = 2, (5, masked), -2, 4
    with torch.no_grad():
        q = agent.critic(batch.obs, batch.actions)
        q_next = agent.critic_target(batch.next_obs, batch.actions).min(0).values
    metrics = agent.critic_step(batch)
    torch.testing.assert_close(metrics["target_q"], y.mean())
    torch.testing.assert_close(metrics["critic_loss"], ((q[0] - y) ** 2).mean() + ((q[1] - y) ** 2).mean())
    wrong = batch.rewards + 0.5 * (1 - batch.dones) * q_next  # what a Q-based target would give
    assert not torch.allclose(wrong.mean(), y.mean())


def _advantage_batch(agent, advantages):
    """A batch with V = 0 and min_j Q_target_j = the given advantages."""
    n = len(advantages)
    agent.value = SumOfObs()
    batch = _batch(n)._replace(obs=torch.zeros(n, 5))
    return batch, torch.tensor(advantages)


def test_awr_weights_are_clipped_exponentiated_advantages_and_policy_loss_is_weighted_nll():
    agent = _agent(beta=3.0, exp_adv_max=100.0)
    batch, target_q = _advantage_batch(agent, [-1.0, 0.0, 0.5, 2.0])
    weight = torch.tensor([math.exp(-3.0), 1.0, math.exp(1.5), 100.0])  # exp(6) = 403 is clipped to 100
    with torch.no_grad():
        mean = torch.tanh(agent.actor.mean[:-1](batch.obs))  # the squashed mean
        std = agent.actor.log_std.clamp(-5.0, 2.0).exp()
        log_prob = Normal(mean, std).log_prob(batch.actions).sum(-1)
    metrics = agent.actor_step(batch, target_q)
    torch.testing.assert_close(metrics["awr_weight"], weight.mean())
    torch.testing.assert_close(metrics["awr_weight_clipped_fraction"], torch.tensor(0.25))
    torch.testing.assert_close(metrics["actor_loss"], -(weight * log_prob).mean())


def test_deterministic_policy_option_minimises_the_weighted_squared_error():
    agent = _agent(policy="deterministic", beta=1.0)
    batch, target_q = _advantage_batch(agent, [0.0, 1.0, -2.0])
    with torch.no_grad():
        error = (agent.actor(batch.obs) - batch.actions).pow(2).sum(-1)
    metrics = agent.actor_step(batch, target_q)
    weight = torch.tensor([1.0, math.e, math.exp(-2.0)])
    torch.testing.assert_close(metrics["actor_loss"], (weight * error).mean())


def test_ddpgbc_extraction_is_normalised_q_of_the_mode_plus_alpha_bc():
    """OGBench's GCIQL policy loss: -E Q(s, clip(mode)) / sg(E |Q|) - alpha E log pi(a|s), on the online critic."""
    agent = _agent(extraction="ddpgbc", alpha=0.003)
    batch = _batch()
    with torch.no_grad():
        mode = agent.actor.mode(batch.obs).clamp(-1.0, 1.0)
        q = agent.critic(batch.obs, mode).min(dim=-2).values
        nll = -agent.actor.log_prob(batch.obs, batch.actions)
        expected = -q.mean() / q.abs().mean() + 0.003 * nll.mean()
        q_before = q.mean()
    metrics = agent.actor_step(batch, target_q=torch.zeros(len(batch.obs)))
    torch.testing.assert_close(metrics["actor_loss"], expected)
    for _ in range(20):
        agent.actor_step(batch, target_q=torch.zeros(len(batch.obs)))
    with torch.no_grad():  # the policy climbs the critic (alpha small)
        assert agent.critic(batch.obs, agent.actor.mode(batch.obs).clamp(-1, 1)).min(dim=-2).values.mean() > q_before
    with pytest.raises(ConfigError, match="agent.extraction"):
        _agent(extraction="awac")


@pytest.mark.parametrize("extraction", ["awr", "ddpgbc"])
def test_policy_step_trains_on_the_batchs_policy_observations(extraction):
    """With Batch.policy_obs (the policy's own goals) the policy step is the step on those observations:
    AWR recomputes its advantage there instead of using the value step's target Q."""
    import copy

    own, reference = _agent(extraction=extraction), _agent(extraction=extraction)
    batch, other = _batch(seed=0), _batch(seed=1)
    with torch.no_grad():
        target_q = reference.critic_target(other.obs, batch.actions).min(dim=-2).values
    reference.actor_step(other._replace(actions=batch.actions), target_q)
    metrics = own.actor_step(batch._replace(policy_obs=other.obs), target_q=torch.full((64,), 1e3))
    assert torch.isfinite(metrics["actor_loss"]) and all(
        torch.equal(a, b) for a, b in zip(own.actor.parameters(), reference.actor.parameters()))
    copy.deepcopy(own).update(batch._replace(policy_obs=other.obs))  # the whole update runs with them


def test_layer_norm_and_a_fixed_std_give_ogbenchs_gciql_networks():
    """layer_norm: a LayerNorm after every hidden layer of V and both Q heads (normalised pre-activations);
    log_std_min = log_std_max = 0: the policy's std stays 1 (OGBench's const_std)."""
    agent = _agent(layer_norm=True, extraction="ddpgbc", log_std_min=0.0, log_std_max=0.0)
    batch = _batch()
    v, q = agent.value(batch.obs), agent.critic(batch.obs, batch.actions)
    assert v.shape == (64, 1) and q.shape == (2, 64)
    with torch.no_grad():  # a LayerNorm after the first hidden layer: scaling that layer changes nothing
        for first in (agent.value.net.layers[0], agent.critic.net.layers[0]):
            first.weight.mul_(10.0), first.bias.mul_(10.0)
    torch.testing.assert_close(agent.value(batch.obs), v, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(agent.critic(batch.obs, batch.actions), q, atol=1e-4, rtol=1e-4)
    for _ in range(5):
        agent.update(batch)
    expected = Normal(agent.actor.mean(batch.obs), 1.0).log_prob(batch.actions).sum(-1)
    torch.testing.assert_close(agent.actor.log_prob(batch.obs, batch.actions), expected)


def test_target_critic_is_a_polyak_average_with_rate_tau():
    agent = _agent(tau=0.25)
    old_target = _snapshot(agent.critic_target)
    agent.update(_batch())
    for t, t0, p in zip(agent.critic_target.parameters(), old_target, agent.critic.parameters()):
        torch.testing.assert_close(t, 0.75 * t0 + 0.25 * p)


def test_each_step_updates_only_its_own_network():
    agent = _agent()
    batch = _batch()
    nets = {"value": agent.value, "actor": agent.actor, "critic": agent.critic, "target": agent.critic_target}
    keep_gradients(agent)

    def run(step, owner):
        for net in nets.values():
            net.zero_grad(set_to_none=True)
        before = {name: _snapshot(net) for name, net in nets.items()}
        out = step()
        for name, net in nets.items():
            grads = [p.grad for p in net.parameters()]
            moved = not _unchanged(before[name], net)
            if name == owner:
                assert moved and all(g is not None for g in grads), name
            elif name == "target" and owner == "critic":
                assert moved and all(g is None for g in grads)  # Polyak, no gradient
            else:
                assert not moved and all(g is None for g in grads), (owner, name)
        return out

    _, target_q = run(lambda: agent.value_step(batch), "value")
    assert not target_q.requires_grad
    run(lambda: agent.actor_step(batch, target_q), "actor")
    run(lambda: agent.critic_step(batch), "critic")


def test_update_order_and_metrics():
    agent = _agent()
    metrics = agent.update(_batch())
    assert {"value_loss", "v", "actor_loss", "advantage", "awr_weight", "critic_loss", "q_data"} <= metrics.keys()
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())
    assert agent.num_updates == 1


def test_actor_lr_follows_a_cosine_over_the_given_updates_and_is_constant_by_default():
    agent = _agent(actor_lr=1e-3, actor_lr_schedule_steps=4)
    lrs = []
    for step in range(6):
        agent.update(_batch(seed=step))
        lrs.append(float(agent.optimizers["actor"].param_groups[0]["lr"]))
    expected = [1e-3, 0.5e-3 * (1 + math.cos(math.pi / 4)), 0.5e-3, 0.5e-3 * (1 - math.cos(math.pi / 4)), 0.0, 0.0]
    assert lrs == pytest.approx(expected, abs=1e-9)
    assert cosine_lr(1e-3, 2, 4) == pytest.approx(0.5e-3)
    for name in ("value", "critic"):
        assert agent.optimizers[name].param_groups[0]["lr"] == 3e-4
    constant = _agent()
    constant.update(_batch())
    assert constant.optimizers["actor"].param_groups[0]["lr"] == 3e-4


def test_defaults_follow_the_official_mujoco_config():
    agent = make_agent({"name": "iql"}, 11, 3)
    cfg = agent.cfg
    assert (cfg.expectile, cfg.beta, cfg.exp_adv_max, cfg.discount, cfg.tau) == (0.7, 3.0, 100.0, 0.99, 0.005)
    assert cfg.actor_lr == cfg.critic_lr == cfg.value_lr == 3e-4 and cfg.hidden_dims == [256, 256]
    assert not cfg.normalize_states and cfg.actor_lr_schedule_steps is None
    assert agent.critic.n == 2 and agent.actor.log_std.shape == (3,)
    assert isinstance(agent.actor.mean[-1], nn.Tanh)  # tanh-squashed mean
    with pytest.raises(ConfigError, match="policy='beta'"):
        _agent(policy="beta")
    with pytest.raises(ConfigError, match="actor_lr_schedule_steps"):
        _agent(actor_lr_schedule_steps=0)


def test_actor_dropout_is_on_in_the_policy_loss_and_off_when_acting():
    agent = _agent(actor_dropout=0.5)
    obs, actions = torch.randn(16, 5), torch.rand(16, 2) * 2 - 1
    assert any(isinstance(m, nn.Dropout) for m in agent.actor.modules())
    torch.testing.assert_close(agent.act(obs), agent.act(obs))
    torch.testing.assert_close(agent.log_prob(obs, actions), agent.log_prob(obs, actions))
    assert agent.actor.training  # restored after acting
    with torch.no_grad():
        assert not torch.equal(agent.actor.log_prob(obs, actions), agent.actor.log_prob(obs, actions))


# --- log_prob: the agent interface used for policy-guided diffusion ---------------------------------------


def _reference_log_prob(agent, obs, actions):
    """The density each agent should report, built with torch.distributions."""
    name = agent.cfg.name
    with torch.no_grad():
        if name == "iql":
            mean = torch.tanh(agent.actor.mean[:-1](obs))
            return Normal(mean, agent.actor.log_std.clamp(-5, 2).exp()).log_prob(actions).sum(-1)
        if name == "odice":
            return Normal(agent.actor.mean(obs), agent.actor.log_std.clamp(-5, 2).exp()).log_prob(actions).sum(-1)
        if name in ("sac", "cql", "calql"):  # tanh-Gaussian policies
            mean, log_std = agent.actor.trunk(obs).chunk(2, -1)
            base = Normal(mean, log_std.clamp(-20, 2).exp())
            return TransformedDistribution(base, TanhTransform()).log_prob(actions).sum(-1)
        if name == "pmoe":
            mean, log_std, logits = agent.actor.heads(obs)
            base = Normal(mean, log_std.exp())  # (B, K, A)
            per_expert = TransformedDistribution(base, TanhTransform()).log_prob(actions[:, None, :]).sum(-1)
            return torch.logsumexp(logits.log_softmax(-1) + per_expert, -1)
        return Normal(agent.act(obs), 1.0).log_prob(actions).sum(-1)  # deterministic actors


# EXPO has no policy density (an argmax over diffusion samples); tests/test_expo.py checks that log_prob says so.
@pytest.mark.parametrize("name", sorted(set(AGENTS) - {"expo"}))
def test_log_prob_matches_torch_distributions_and_gradient_ascent_increases_it(name):
    agent = _agent(name, obs_dim=4, act_dim=3)
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(8, 4, generator=g)
    actions = (torch.rand(8, 3, generator=g) * 1.6 - 0.8).requires_grad_(True)
    log_prob = agent.log_prob(obs, actions)
    assert log_prob.shape == (8,)
    torch.testing.assert_close(log_prob.detach(), _reference_log_prob(agent, obs, actions.detach()),
                               rtol=1e-4, atol=1e-4)
    (grad,) = torch.autograd.grad(log_prob.sum(), actions)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # a few small ascent steps on the actions raise every sample's log-likelihood
    moved = actions.detach()
    for _ in range(5):
        moved = moved.requires_grad_(True)
        (step,) = torch.autograd.grad(agent.log_prob(obs, moved).sum(), moved)
        moved = (moved + 1e-3 * step / step.norm(dim=-1, keepdim=True).clamp(min=1e-12)).detach()
    assert (agent.log_prob(obs, moved) > log_prob.detach()).all()


@pytest.mark.parametrize("name", ["td3bc", "bc"])
def test_default_log_prob_of_a_deterministic_agent_is_a_unit_gaussian_peaking_at_act(name):
    agent = _agent(name)
    obs = torch.randn(6, 5)
    at_mode = agent.act(obs).requires_grad_(True)
    peak = agent.log_prob(obs, at_mode)
    torch.testing.assert_close(peak.detach(), torch.full((6,), -math.log(2 * math.pi)))  # -A/2 log 2 pi, A = 2
    (grad,) = torch.autograd.grad(peak.sum(), at_mode)
    torch.testing.assert_close(grad, torch.zeros_like(grad))
    off = at_mode.detach() + torch.tensor([0.3, -0.2])
    torch.testing.assert_close(agent.log_prob(obs, off), peak.detach() - 0.5 * (0.09 + 0.04))
    agent.log_prob_std = 0.5
    x = off.requires_grad_(True)
    (grad,) = torch.autograd.grad(agent.log_prob(obs, x).sum(), x)
    torch.testing.assert_close(grad, (at_mode.detach() - off.detach()) / 0.25)


def test_tanh_gaussian_log_prob_is_finite_at_the_action_bounds():
    for name in ("sac", "pmoe"):
        agent = _agent(name)
        actions = torch.tensor([[1.0, -1.0], [0.999999, 0.0]], requires_grad=True)
        log_prob = agent.log_prob(torch.randn(2, 5), actions)
        (grad,) = torch.autograd.grad(log_prob.sum(), actions)
        assert torch.isfinite(log_prob).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("dataset,normalization", [("hopper-medium", "return_range"),
                                                   ("walker2d-medium-replay", "return_range"), ("idp-mixed", "none")])
def test_mujoco_datasets_get_the_return_range_reward_scaling(dataset, normalization):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from offrl.cli.train import _register_schemas

    _register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="offrl.conf", version_base="1.3"):
            cfg = compose("config", overrides=["agent=iql", f"dataset={dataset}"])
    finally:
        GlobalHydra.instance().clear()
    assert cfg.agent.name == "iql" and cfg.agent.expectile == 0.7
    assert cfg.dataset.reward_normalization == normalization


def test_iql_trains_through_the_cli(tmp_path, small_default_dataset):
    run = tmp_path / "iql"
    code = main(["train", "agent=iql", *FAST, "trainer.steps=200", "trainer.eval_every=200",
                 f"hydra.run.dir={run}"])
    assert code == 0
    results = json.loads((run / "results.json").read_text())
    assert results["gradient_steps"] == 200 and math.isfinite(results["normalized_score"])
