"""FQL (docs/algorithms/fql.md) and the flow-matching block it uses (offrl/diffusion/flow.py): the loss at known
velocities, the Euler sampler on a Gaussian path whose flow is known in closed form, where each loss's gradient goes,
the TD target's aggregation and next action, the official defaults and per-task values, and the command line's
refusals."""

import math

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from torch import nn

from offrl.agents import make_agent
from offrl.agents.fql import FQLConfig
from offrl.cli import main
from offrl.cli.train import _register_schemas
from offrl.data.store import Batch
from offrl.diffusion import MLPVelocity, euler_sample, flow_matching_loss
from tests.conftest import FAST, keep_gradients

OBS, ACT = 3, 2


def _agent(**changes):
    torch.manual_seed(0)
    return make_agent({"name": "fql", "hidden_dims": [8, 8], "critic_hidden_dims": [8, 8], "flow_steps": 3,
                       **changes}, OBS, ACT)


def _batch(n: int = 2) -> Batch:
    """n transitions with rewards 1, 0.5, ...; the second a termination."""
    g = torch.Generator().manual_seed(1)
    dones = torch.zeros(n)
    dones[1] = 1.0
    return Batch(torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1,
                 torch.tensor([1.0, 0.5, *([0.0] * (n - 2))]), torch.randn(n, OBS, generator=g), dones)


class Velocity(nn.Module):
    """A velocity field given as a function f(x, t)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x, t, cond=None):
        return self.fn(x, t[..., None] if torch.is_tensor(t) and t.dim() else t)


class Constant(nn.Module):
    """A stand-in critic ensemble whose values are fixed, or a function of the actions."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, obs, actions, members=slice(None)):
        return self.fn(actions)


# ---------------------------------------------------------------------------------------------- flow matching
def test_the_flow_matching_loss_at_known_velocities():
    x0, x1 = torch.tensor([[0.0, 1.0], [1.0, -1.0]]), torch.tensor([[2.0, 3.0], [1.0, 1.0]])
    t = torch.tensor([0.5, 0.25])
    # x_t = [[1, 2], [1, -0.5]], targets x1 - x0 = [[2, 2], [0, 2]]
    zero = Velocity(lambda x, t: torch.zeros_like(x))
    assert flow_matching_loss(zero, x1, x0=x0, t=t).item() == pytest.approx((4 + 4 + 0 + 4) / 4)  # mean, not sum
    identity = Velocity(lambda x, t: x)  # errors x_t - target: [[-1, 0], [1, -2.5]]
    assert flow_matching_loss(identity, x1, x0=x0, t=t).item() == pytest.approx((1 + 0 + 1 + 6.25) / 4)
    stacked = flow_matching_loss(identity, torch.stack([x1, x1]), x0=torch.stack([x0, x0]), t=torch.stack([t, t]))
    assert stacked.shape == (2,)  # a leading seed axis: one loss per seed


def test_the_flow_matching_loss_of_the_exact_velocity_field_is_zero():
    """A point mass x1 = m: every path is x_t = (1 - t) x0 + t m, whose velocity m - x0 = (m - x_t) / (1 - t)."""
    m = torch.tensor([0.3, -0.7])
    exact = Velocity(lambda x, t: (m - x) / (1 - t))
    g = torch.Generator().manual_seed(0)
    x1 = m.expand(1000, 2)
    t = torch.rand(1000, generator=g) * 0.99  # away from t = 1
    assert flow_matching_loss(exact, x1, t=t, generator=g).item() < 1e-10
    assert flow_matching_loss(Velocity(lambda x, t: torch.zeros_like(x)), x1, t=t, generator=g).item() > 0.5


def test_euler_steps_on_the_time_grid_k_over_k():
    velocity = Velocity(lambda x, t: x + t)  # two steps: x <- x + x / 2, then x <- x + (x + 1/2) / 2
    x0 = torch.tensor([[1.0], [2.0]])
    x1 = x0 + x0 / 2
    torch.testing.assert_close(euler_sample(velocity, x0, None, 2), x1 + (x1 + 0.5) / 2)


def _gaussian_velocity(m: float, s: float):
    """The marginal velocity E[x1 - x0 | x_t = x] of the path from N(0, 1) to N(m, s^2) (independent ends): x_t is
    N(t m, sigma_t^2), sigma_t^2 = (1 - t)^2 + t^2 s^2, and x1 - x0 regresses on x_t with slope
    (t s^2 - (1 - t)) / sigma_t^2. Its flow maps x0 to t m + sigma_t x0: at t = 1, m + s x0."""
    def v(x, t):
        var = (1 - t) ** 2 + t ** 2 * s ** 2
        return m + (t * s ** 2 - (1 - t)) / var * (x - t * m)
    return Velocity(v)


def test_euler_with_the_exact_velocity_transports_the_gaussian_to_the_target():
    m, s = 0.7, 0.3
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(20_000, 1, generator=g)
    errors = {}
    for steps in (2, 100, 1000):  # against the closed-form flow map m + s x0, sample by sample
        x1 = euler_sample(_gaussian_velocity(m, s), x0, None, steps)
        errors[steps] = ((x1 - (m + s * x0)).abs() / (1 + x0.abs())).max().item()
        if steps == 100:
            assert x1.mean().item() == pytest.approx(m, abs=0.01) and x1.std().item() == pytest.approx(s, abs=0.01)
    assert errors[100] < 0.006 and errors[2] > 0.1  # two steps are visibly off: the step count matters
    assert errors[1000] == pytest.approx(errors[100] / 10, rel=0.1)  # Euler's first order: error ~ 1 / steps


def test_euler_is_batched_over_any_leading_shape_and_without_gradient_by_default():
    torch.manual_seed(0)
    net = MLPVelocity(2, 3, [8, 8])
    g = torch.Generator().manual_seed(1)
    x0, cond = torch.randn(3, 4, 2, generator=g), torch.randn(3, 4, 3, generator=g)
    out = euler_sample(net, x0, cond, 4)
    torch.testing.assert_close(out.reshape(12, 2), euler_sample(net, x0.reshape(12, 2), cond.reshape(12, 3), 4))
    torch.testing.assert_close(euler_sample(net, x0[:, :1], cond[:, :1], 4), out[:, :1])  # row by row the same
    assert not out.requires_grad
    assert euler_sample(net, x0, cond, 4, differentiable=True).requires_grad


def test_the_velocity_mlp_is_the_official_actor_vector_field():
    net = MLPVelocity(2, 3)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 512), (512, 512), (512, 512), (512, 512),
                                                                   (512, 2)]
    assert all(isinstance(m, nn.GELU) and m.approximate == "tanh" for m in net.net if not isinstance(m, nn.Linear))
    assert all(not m.bias.detach().any() for m in linears)
    one_step = MLPVelocity(2, 3, [8], time_input=False)
    x, s = torch.randn(5, 2), torch.randn(5, 3)
    torch.testing.assert_close(one_step(x, None, s), one_step.net(torch.cat([s, x], -1)))


# ---------------------------------------------------------------------------------------------- the agent
@pytest.mark.parametrize("q_agg, expected", [("mean", -1.0), ("min", -4.0)])
def test_the_td_target_aggregates_the_target_critics_as_configured(q_agg, expected):
    agent = _agent(q_agg=q_agg, discount=0.9)
    agent.critic_target = Constant(lambda a: torch.tensor([[2.0], [-4.0]]).expand(2, a.shape[0]))
    y = agent.td_target(_batch(), torch.zeros(2, ACT))
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * expected, 0.5]))  # the terminal row keeps r


def test_the_td_target_reads_the_one_step_policys_clipped_action_at_the_next_state():
    agent = _agent()
    with torch.no_grad():  # a one-step policy whose output is 3 everywhere, clipped to 1
        last = agent.actor.net[-1]
        last.weight.zero_()
        last.bias.fill_(3.0)
    agent.critic_target = Constant(lambda a: a.sum(-1).expand(2, -1))
    y = agent.td_target(_batch(), torch.zeros(2, ACT))
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.99 * ACT, 0.5]))


@pytest.mark.parametrize("normalize", [False, True])
def test_the_policys_q_term_is_the_mean_of_the_critics(normalize):
    agent = _agent(normalize_q_loss=normalize, q_agg="min")  # q_agg is the target's only
    agent.critic = Constant(lambda a: torch.tensor([[3.0], [1.0]]).expand(2, a.shape[0]))
    metrics = agent.actor_loss(_batch(), torch.zeros(2, ACT))
    assert metrics["q_loss"].item() == pytest.approx(-1.0 if normalize else -2.0)
    torch.testing.assert_close(metrics["actor_loss"], 10.0 * metrics["distill_loss"] + metrics["q_loss"])


def test_each_loss_reaches_only_its_own_network():
    """One update with the steps withheld: the one-step policy's gradient is L_mu's (by hand: distillation onto the
    clipped Euler actions of the same noise, minus the critics' mean value), the flow's is L_flow's and the critics'
    L_Q's; L_mu sends nothing into the flow (its target has no graph) and is not stepped on the critics."""
    agent = _agent(alpha=3.0)
    keep_gradients(agent, step=False)
    batch = _batch(8)
    inputs = agent.prepare(batch)
    agent.iteration(batch, inputs)
    s, a, z = batch.obs, batch.actions, inputs["z"]
    with torch.no_grad():
        x = z
        for k in range(3):
            x = x + agent.flow(x, torch.full((8,), k / 3), s) / 3
        target = x.clamp(-1, 1)
    mu = agent.actor(z, None, s)
    l_mu = 3.0 * (mu - target).pow(2).mean() - agent.critic(s, mu.clamp(-1, 1)).mean()
    x_t = (1 - inputs["t"][:, None]) * inputs["x0"] + inputs["t"][:, None] * a
    l_flow = (agent.flow(x_t, inputs["t"], s) - (a - inputs["x0"])).pow(2).mean()
    y = agent.td_target(batch, inputs["z_next"])
    l_q = (agent.critic(s, a) - y).pow(2).mean()
    for loss, net in ((l_mu, agent.actor), (l_flow, agent.flow), (l_q, agent.critic)):
        params = list(net.parameters())
        for p, g in zip(params, torch.autograd.grad(loss, params, retain_graph=True)):
            torch.testing.assert_close(p.grad, g)
    assert all(g is None for g in torch.autograd.grad(l_mu, list(agent.flow.parameters()), allow_unused=True))
    assert all(p.grad is None for p in agent.critic_target.parameters())


def test_the_update_draws_uniform_times_and_acts_with_zero_noise():
    agent = _agent()
    big = Batch(torch.zeros(20_000, OBS), torch.zeros(20_000, ACT), torch.zeros(20_000), torch.zeros(20_000, OBS),
                torch.zeros(20_000))
    t = agent.prepare(big)["t"]
    assert t.shape == (20_000,) and 0 <= t.min() and t.max() <= 1
    assert t.mean().item() == pytest.approx(0.5, abs=0.01) and t.var().item() == pytest.approx(1 / 12, abs=0.005)
    obs = torch.randn(5, OBS)
    torch.testing.assert_close(agent.act(obs), agent.actor(torch.zeros(5, ACT), None, obs).clamp(-1, 1))
    torch.testing.assert_close(agent.deterministic_policy()(obs), agent.act(obs))
    assert not torch.allclose(agent.act(obs, deterministic=False), agent.act(obs))


def test_defaults_are_the_official_codes():
    cfg = FQLConfig()
    assert cfg.hidden_dims == cfg.critic_hidden_dims == [512, 512, 512, 512] and cfg.critic_layer_norm
    assert not cfg.normalize_states and cfg.lr == 3e-4 and (cfg.discount, cfg.tau) == (0.99, 0.005)
    assert (cfg.q_agg, cfg.alpha, cfg.flow_steps, cfg.normalize_q_loss) == ("mean", 10.0, 10, False)
    agent = make_agent({"name": "fql"}, OBS, ACT)
    assert agent.critic.net.norm_weights is not None and agent.critic.n == 2
    assert not any(isinstance(m, nn.LayerNorm) for m in agent.actor.modules())  # actor_layer_norm=False
    bound = math.sqrt(6 / (OBS + ACT + 512))  # Xavier-uniform critics, zero biases
    first = agent.critic.net.layers[0]
    assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.9 * bound and first.bias.abs().max() == 0


def test_agent_fql_picks_its_trainer_and_the_per_task_alpha():
    _register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="offrl.conf", version_base="1.3"):
        cfg = compose("config", ["agent=fql", "dataset=cube-single-play-task1"])
        assert (cfg.trainer.mode, cfg.trainer.steps, cfg.trainer.batch_size) == ("offline", 1_000_000, 256)
        assert (cfg.trainer.eval_every, cfg.trainer.eval_episodes) == (100_000, 50)
        assert cfg.agent.alpha == 300
        assert compose("config", ["agent=fql", "dataset=cube-double-play-task4"]).agent.alpha == 300
        assert compose("config", ["agent=fql", "dataset=puzzle-3x3-play-task2"]).agent.alpha == 1000
        assert compose("config", ["agent=fql", "dataset=cube-single-noisy-task1"]).agent.alpha == 10.0  # none published
        cfg = compose("config", ["agent=fql", "dataset=cube-single-play-task1", "agent.alpha=30", "trainer=quickstart"])
        assert cfg.agent.alpha == 30 and cfg.trainer.eval_episodes == 10  # the command line still wins
    GlobalHydra.instance().clear()


REFUSED = [("agent.flow_steps=0", "agent.flow_steps=0: expected a positive integer"),
           ("agent.alpha=-1", "agent.alpha=-1.0: expected a finite number >= 0"),
           ("agent.alpha=nan", "agent.alpha=nan: expected a finite number >= 0"),
           ("agent.alpha=inf", "agent.alpha=inf: expected a finite number >= 0"),
           ("agent.q_agg=max", "agent.q_agg='max': expected one of mean, min")]


@pytest.mark.parametrize("override, message", REFUSED, ids=[o for o, _ in REFUSED])
def test_cli_refuses_in_one_line_with_exit_2_and_no_run_directory(tmp_path, capsys, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)  # Hydra's default output directories would appear here
    code = main(["train", "agent=fql", *FAST, "trainer.steps=2", override, "threads=1",
                 f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []
