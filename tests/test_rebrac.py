"""ReBRAC (docs/algorithms/rebrac.md): the critic's penalised target and the actor's penalty by hand, LayerNorm critics
after each activation, the paper's defaults and per-dataset values, and the refusals of the command line."""

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from torch import nn

from offrl.agents import make_agent
from offrl.agents.rebrac import ReBRACConfig
from offrl.cli import main
from offrl.cli.train import _register_schemas
from offrl.data.store import Batch
from tests.conftest import FAST, keep_gradients

OBS, ACT = 3, 2


def _agent(**changes):
    torch.manual_seed(0)
    return make_agent({"name": "rebrac", "hidden_dims": [8, 8], **changes}, OBS, ACT)


def _batch(next_actions: torch.Tensor) -> Batch:
    """Two transitions, rewards 1 and 0.5, the second a termination."""
    g = torch.Generator().manual_seed(1)
    return Batch(torch.randn(2, OBS, generator=g), torch.rand(2, ACT, generator=g) * 2 - 1, torch.tensor([1.0, 0.5]),
                 torch.randn(2, OBS, generator=g), torch.tensor([0.0, 1.0]), next_actions=next_actions)


class Constant(nn.Module):
    """A stand-in network whose output is fixed: the target actor's actions, or the target critics' values."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, *inputs, members=slice(None)):
        return self.value


@pytest.mark.parametrize("beta_critic", [0.0, 0.1])
def test_the_critic_target_subtracts_the_penalty_on_the_dataset_next_action(beta_critic):
    agent = _agent(discount=0.9, beta_critic=beta_critic)
    agent.actor_target = Constant(torch.tensor([[0.5, -0.5], [0.9, 0.0]]))  # pi_target(s')
    agent.critic_target = Constant(torch.tensor([[3.0, 1.0], [2.0, 4.0]]))  # Q_target_j(s', a'), (members, B)
    batch = _batch(next_actions=torch.tensor([[0.0, 0.0], [0.0, 1.0]]))  # a'_D
    noise = torch.tensor([[2.0, 0.0], [2.0, 0.0]])  # sigma 0.2: 0.4 on the first dimension, clipped to c = 0.5 (no-op)
    next_actions, y = agent.td_target(batch, noise)
    # a' = clip(pi_target(s') + 0.4, -1, 1) = [[0.9, -0.5], [1.0, 0.0]]
    torch.testing.assert_close(next_actions, torch.tensor([[0.9, -0.5], [1.0, 0.0]]))
    # row 0: min Q = 2, ||a' - a'_D||^2 = 0.81 + 0.25; row 1 terminates: y = r
    expected = torch.tensor([1.0 + 0.9 * (2.0 - beta_critic * (0.81 + 0.25)), 0.5])
    torch.testing.assert_close(y, expected)


def test_the_actor_loss_adds_the_penalty_to_the_smaller_normalised_q():
    agent = _agent(beta_actor=0.3, alpha=1.0)
    with torch.no_grad():  # critics whose values are constants: Q_1 = 2, Q_2 = -4 for every (s, a)
        for layer in agent.critic.net.layers:
            layer.weight.zero_()
            layer.bias.zero_()
        agent.critic.net.layers[-1].bias[:, 0, 0] = torch.tensor([2.0, -4.0])
    keep_gradients(agent, step=False)
    batch = _batch(next_actions=torch.zeros(2, ACT))
    metrics = agent.actor_step(batch, batch.actions)
    pi = agent.actor(batch.obs)
    bc = (pi - batch.actions).pow(2).sum(-1).mean()  # squared distance summed over the action dims
    # lambda = 1 / |min Q| = 1/4; -lambda min Q = +1 (TD3+BC's first critic alone would give -1/2 * 2 = -1)
    expected = 0.3 * bc + 1.0
    torch.testing.assert_close(metrics["actor_loss"], expected.detach())
    torch.testing.assert_close(metrics["lambda"], torch.tensor(0.25))
    torch.testing.assert_close(metrics["bc_loss"], bc.detach())
    grads = torch.autograd.grad(expected, list(agent.actor.parameters()))
    for p, g in zip(agent.actor.parameters(), grads):
        torch.testing.assert_close(p.grad, g)  # the actor's gradient is the penalty's here (Q is flat)
    assert all(p.grad is None for p in agent.critic.parameters())


def test_critics_have_a_layer_norm_after_each_hidden_activation():
    agent = _agent(hidden_dims=[8, 8, 8])
    for critic in (agent.critic, agent.critic_target):
        assert len(critic.net.norm_weights) == 3
    net = agent.critic.net
    with torch.no_grad():
        for w, b in zip(net.norm_weights, net.norm_biases):  # affine parameters away from their (1, 0) start
            w.uniform_(0.5, 1.5)
            b.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(2)
    obs, actions = torch.randn(5, OBS, generator=g), torch.rand(5, ACT, generator=g) * 2 - 1
    for j in range(2):  # each member by hand: linear, ReLU, LayerNorm with its own affine parameters
        x = torch.cat([obs, actions], -1)
        for i, layer in enumerate(net.layers):
            x = x @ layer.weight[j] + layer.bias[j]
            if i < len(net.layers) - 1:
                x = F.layer_norm(torch.relu(x), (x.shape[-1],)) * net.norm_weights[i][j] + net.norm_biases[i][j]
        torch.testing.assert_close(agent.critic(obs, actions)[j], x[:, 0])
    assert _agent(critic_layer_norm=False).critic.net.norm_weights is None
    assert not any(isinstance(m, nn.LayerNorm) for m in agent.actor.modules())  # the actor has none (the paper's)


def test_defaults_are_the_papers():
    cfg = ReBRACConfig()
    assert cfg.hidden_dims == [256, 256, 256] and cfg.critic_hidden_dims is None and cfg.critic_layer_norm
    assert not cfg.normalize_states and cfg.actor_lr == cfg.critic_lr == 1e-3
    assert (cfg.discount, cfg.tau, cfg.policy_noise, cfg.noise_clip, cfg.policy_freq) == (0.99, 0.005, 0.2, 0.5, 2)
    assert cfg.alpha == 1.0


def test_agent_rebrac_picks_its_trainer_and_the_per_dataset_betas():
    _register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="offrl.conf", version_base="1.3"):
        cfg = compose("config", ["agent=rebrac", "dataset=hopper-medium-replay"])
        assert (cfg.trainer.mode, cfg.trainer.batch_size, cfg.trainer.steps) == ("offline", 1024, 1_000_000)
        assert (cfg.agent.beta_actor, cfg.agent.beta_critic) == (0.05, 0.5)
        assert compose("config", ["agent=rebrac", "dataset=walker2d-random"]).agent.beta_critic == 0.0
        cfg = compose("config", ["agent=rebrac", "dataset=hopper-medium-replay", "agent.beta_actor=0.2",
                                 "trainer=quickstart"])
        assert cfg.agent.beta_actor == 0.2 and cfg.trainer.batch_size == 256  # the command line still wins
    GlobalHydra.instance().clear()


REFUSED = [("agent.beta_actor=-0.1", "agent.beta_actor=-0.1: expected a finite number >= 0"),
           ("agent.beta_critic=nan", "agent.beta_critic=nan: expected a finite number >= 0"),
           ("agent.beta_critic=inf", "agent.beta_critic=inf: expected a finite number >= 0"),
           ("trainer=offline_to_online", "trainer.mode=offline_to_online: agent=rebrac reads the dataset's "
                                         "next_actions")]


@pytest.mark.parametrize("override, message", REFUSED, ids=[o for o, _ in REFUSED])
def test_cli_refuses_in_one_line_with_exit_2_and_no_run_directory(tmp_path, capsys, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)  # Hydra's default output directories would appear here
    code = main(["train", "agent=rebrac", *FAST, "trainer.steps=2", override, "threads=1",
                 f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []
