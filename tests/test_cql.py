"""CQL and Cal-QL (docs/algorithms/cql.md, docs/algorithms/calql.md): the conservative gap against a hand computation,
the sampled actions and their densities, the max backup, the Lagrange weight's direction, Cal-QL's floor at the
return-to-go, the sources' defaults, a short run where the gap pushes Q down off the data, and the command line's
refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from offrl.agents import make_agent
from offrl.agents.cql import CalQLConfig, CQLConfig
from offrl.cli import main
from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.d4rl import write_d4rl_hdf5
from offrl.data.store import Batch, TransitionStore
from tests.conftest import FAST, make_episodes

OBS, ACT, N = 3, 2, 3


def _agent(name: str = "cql", **changes):
    torch.manual_seed(0)
    return make_agent({"name": name, "hidden_dims": [16], "cql_n_actions": N, **changes}, OBS, ACT)


def _batch(returns: torch.Tensor | None = None) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(torch.randn(4, OBS, generator=g), torch.rand(4, ACT, generator=g) * 2 - 1, torch.randn(4, generator=g),
                 torch.randn(4, OBS, generator=g), torch.tensor([0.0, 0.0, 1.0, 0.0]), returns=returns)


def _samples() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3N actions per row (uniform, pi(.|s'), pi(.|s)), their log-densities and TD targets, all made up."""
    g = torch.Generator().manual_seed(2)
    actions = torch.rand(4, 3 * N, ACT, generator=g) * 2 - 1
    return actions, torch.randn(4, 3 * N, generator=g), torch.randn(4, generator=g)


def _hand_gaps(agent, batch, sampled, log_density, floor=None) -> list[float]:
    """C_j = mean over rows of T log sum_i exp(x_i / T) - Q_j(s, a), one (s, a) pair at a time."""
    cfg = agent.cfg

    def q(j, b, action):
        return float(agent.critic(batch.obs[b:b + 1], action[None])[j, 0].detach())

    gaps = []
    for j in range(cfg.num_critics):
        rows = []
        for b in range(len(batch.obs)):
            values = []
            for i in range(3 * N):
                value = q(j, b, sampled[b, i])
                if floor is not None and i >= N:  # the policy actions, not the uniform ones
                    value = max(value, float(floor[b]))
                values.append(value - float(log_density[b, i]) if cfg.cql_importance_sample else value)
            if not cfg.cql_importance_sample:
                values.append(q(j, b, batch.actions[b]))
            soft_max = cfg.cql_temp * math.log(sum(math.exp(v / cfg.cql_temp) for v in values))
            rows.append(soft_max - q(j, b, batch.actions[b]))
        gaps.append(sum(rows) / len(rows))
    return gaps


@pytest.mark.parametrize("importance", [True, False])
def test_the_gap_is_a_log_sum_exp_over_sampled_actions_minus_q_on_the_data(importance):
    agent = _agent(cql_temp=2.0, cql_alpha=3.0, cql_importance_sample=importance)
    batch = _batch()
    sampled, log_density, y = _samples()
    with torch.no_grad():
        loss, gap, metrics = agent.critic_loss(batch, y, sampled, log_density)
        q_data = agent.critic(batch.obs, batch.actions)
    torch.testing.assert_close(gap, torch.tensor(_hand_gaps(agent, batch, sampled, log_density)))
    td = ((q_data - y) ** 2).mean(dim=-1)
    torch.testing.assert_close(loss, (td + 3.0 * gap).sum())
    torch.testing.assert_close(metrics["cql_gap"], gap.mean())


def test_sampled_actions_are_uniform_and_policy_actions_with_their_log_densities():
    m = 1000  # samples per state of each kind
    agent = _agent(cql_n_actions=m)
    batch = _batch()
    xi_here, xi_next, xi_uniform = torch.randn(3, 4, m, ACT, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        actions, log_density = agent.sampled_actions(batch, xi_here, xi_next, xi_uniform)
        uniform, there, here = actions.split(m, dim=1)
        assert uniform.abs().max() <= 1 and abs(uniform.mean()) < 0.02 and abs(uniform.var() - 1 / 3) < 0.01
        torch.testing.assert_close(log_density[:, :m], torch.full((4, m), -ACT * math.log(2.0)))
        expected_there = agent.actor(batch.next_obs.repeat_interleave(m, 0), xi_next.flatten(0, 1))[0]
        torch.testing.assert_close(there, expected_there.unflatten(0, (4, m)))
        # the densities at s' for the pi(.|s') actions, at s for the pi(.|s) actions
        for actions_of, obs, density in ((there, batch.next_obs, log_density[:, m:2 * m]),
                                         (here, batch.obs, log_density[:, 2 * m:])):
            torch.testing.assert_close(density, agent.actor.log_prob(obs[:, None].expand(4, m, OBS), actions_of),
                                       atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("entropy", [False, True])
def test_the_max_backup_takes_the_best_of_n_policy_actions_at_the_next_state(entropy):
    agent = _agent(cql_max_target_backup=True, backup_entropy=entropy, discount=0.9)
    batch = _batch()
    noise = torch.randn(4, N, ACT, generator=torch.Generator().manual_seed(4))
    alpha = torch.tensor(0.5)
    y = agent.td_target(batch, alpha, noise)
    for b in range(4):
        values = []
        with torch.no_grad():
            for k in range(N):
                action, log_prob = agent.actor(batch.next_obs[b:b + 1], noise[b, k:k + 1])
                q = float(agent.critic_target(batch.next_obs[b:b + 1], action).min())
                values.append((q, q - 0.5 * float(log_prob)))
        best = max(values)  # the action with the highest min-Q, its soft value with the entropy backup
        expected = float(batch.rewards[b]) + 0.9 * (1 - float(batch.dones[b])) * (best[1] if entropy else best[0])
        assert float(y[b]) == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("target, direction", [(1.0, 1), (100.0, -1)])
def test_the_lagrange_weight_grows_while_the_gap_exceeds_its_target_and_shrinks_below_it(target, direction):
    agent = _agent(cql_lagrange=True, cql_target_action_gap=target)
    assert agent.alpha_prime().item() == pytest.approx(math.e)  # log alpha' = 1 at the start
    metrics = agent.update(_batch())
    assert (metrics["cql_gap"].item() - target) * direction > 0  # a gap of about log(3N) + |A| log 2 and more
    assert (agent.alpha_prime().item() - math.e) * direction > 0
    alone = _agent(cql_lagrange=True, cql_target_action_gap=target)
    before = alone.alpha_prime().item()
    alone.alpha_prime_step(torch.full((2,), target + direction))  # the step alone, on a given gap
    assert (alone.alpha_prime().item() - before) * direction > 0


def test_the_lagrange_critic_loss_weighs_the_gap_minus_its_target_by_alpha_prime():
    agent = _agent(cql_lagrange=True, cql_target_action_gap=2.0, cql_alpha=3.0)
    batch = _batch()
    sampled, log_density, y = _samples()
    with torch.no_grad():
        loss, gap, _ = agent.critic_loss(batch, y, sampled, log_density)
        td = ((agent.critic(batch.obs, batch.actions) - y) ** 2).mean(dim=-1)
    torch.testing.assert_close(loss, (td + math.e * 3.0 * (gap - 2.0)).sum())


def test_calql_never_uses_a_policy_action_q_below_the_return_to_go():
    agent = _agent("calql")
    returns = torch.tensor([-20.0, 20.0, 0.0, 0.05])  # below every Q, above every Q, and in between
    batch = _batch(returns)
    sampled, log_density, y = _samples()
    with torch.no_grad():
        _, gap, metrics = agent.critic_loss(batch, y, sampled, log_density)
        q_policy = agent.critic(batch.obs.repeat_interleave(3 * N, 0), sampled.flatten(0, 1)).unflatten(-1, (4, 3 * N))
    torch.testing.assert_close(gap, torch.tensor(_hand_gaps(agent, batch, sampled, log_density, floor=returns)))
    assert gap.ne(torch.tensor(_hand_gaps(agent, batch, sampled, log_density))).all()  # the floor changed it
    below = (q_policy[..., N:] < returns[:, None]).float().mean()
    torch.testing.assert_close(metrics["bound_rate"], below)
    assert 0 < below < 1


def test_cql_ignores_the_returns_and_calql_reads_them():
    batch = _batch(torch.full((4,), 20.0))
    sampled, log_density, y = _samples()
    cql, calql = _agent(), _agent("calql")
    calql.load_state_dict(cql.state_dict())  # the same critics
    with torch.no_grad():
        cql_gap = cql.critic_loss(batch, y, sampled, log_density)[1]
        calql_gap = calql.critic_loss(batch, y, sampled, log_density)[1]
        unbounded = calql.critic_loss(batch._replace(returns=torch.full((4,), -1e6)), y, sampled, log_density)[1]
    torch.testing.assert_close(unbounded, cql_gap)
    assert (calql_gap > cql_gap).all()
    assert cql.dataset_columns == () and calql.dataset_columns == ("returns",)


def test_defaults_are_corls_gym_mujoco_ones_for_cql_and_the_official_codes_for_calql():
    cql, calql = CQLConfig(), CalQLConfig()
    assert (cql.cql_alpha, cql.actor_lr, cql.critic_lr, cql.alpha_lr, cql.hidden_dims, cql.cql_n_actions,
            cql.cql_temp, cql.cql_importance_sample, cql.cql_lagrange, cql.cql_max_target_backup, cql.backup_entropy,
            cql.normalize_states, cql.orthogonal_init, cql.discount, cql.tau, cql.num_critics) == (
        10.0, 3e-5, 3e-4, 3e-5, [256, 256, 256], 10, 1.0, True, False, False, False, True, True, 0.99, 0.005, 2)
    assert (calql.cql_alpha, calql.actor_lr, calql.alpha_lr, calql.hidden_dims, calql.cql_max_target_backup,
            calql.normalize_states) == (5.0, 1e-4, 1e-4, [256, 256], True, False)
    agent = _agent()
    assert agent.log_alpha[0].exp().item() == 1.0 and agent.target_entropy == -ACT
    with torch.no_grad():  # CORL's initialisation: sigma near exp(-1), orthogonal critic layers with gain sqrt 2
        _, log_std = agent.actor.distribution(torch.randn(8, OBS))
        torch.testing.assert_close(log_std, torch.full_like(log_std, -1.0), atol=0.05, rtol=0)
        w = agent.critic.net.layers[0].weight[1]  # (in, out) = (5, 16): orthogonal rows
        torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(OBS + ACT), atol=1e-5, rtol=0)


def test_the_gap_pushes_q_down_off_the_data_and_up_on_it():
    """A short run on 256 rows whose actions cluster near 0.5: Q ends higher on the dataset actions than on uniform
    ones, by more than without the penalty (cql_alpha = 0: the SAC backbone alone)."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(256, OBS)).astype(np.float32)
    actions = np.clip(0.5 + 0.1 * rng.normal(size=(256, ACT)), -1, 1).astype(np.float32)
    data = OfflineData(obs, actions, rng.normal(size=256).astype(np.float32) * 0.1, obs, np.zeros(256, bool),
                       np.arange(256) % 64 == 63, DatasetInfo("t", "test", "test"))
    gaps = {}
    for weight in (0.0, 5.0):
        agent = _agent(cql_alpha=weight, hidden_dims=[32, 32], critic_lr=1e-3)
        store = TransitionStore.from_data(data, seed=0)
        for _ in range(150):
            agent.update(store.sample(64))
        with torch.no_grad():
            s = torch.from_numpy(obs)
            on = agent.critic(s, torch.from_numpy(actions)).mean()
            off = agent.critic(s, torch.rand(256, ACT) * 2 - 1).mean()
        gaps[weight] = float(on - off)
    assert gaps[5.0] > 2.0 and gaps[5.0] > gaps[0.0] + 2.0, gaps


# ---------------------------------------------------------------------- the command line
REFUSED = [
    (["agent=cql", "agent.cql_alpha=-1"], "agent.cql_alpha=-1.0: expected a finite number >= 0"),
    (["agent=cql", "agent.cql_alpha=inf"], "agent.cql_alpha=inf: expected a finite number >= 0"),
    (["agent=cql", "agent.cql_target_action_gap=nan"], "agent.cql_target_action_gap=nan: expected a finite number"),
    (["agent=cql", "agent.cql_temp=0"], "agent.cql_temp=0.0: expected a positive finite number"),
    (["agent=calql", "dataset=idp-mixed", "agent.cql_alpha=-0.5"], "agent.cql_alpha=-0.5: expected a finite number"),
    (["agent=calql", "dataset=idp-mixed", "trainer=online", "env=InvertedDoublePendulum-v5"],
     "trainer.mode=online: agent=calql reads the dataset's returns, and an online run has no dataset"),
    (["agent=calql", "env=InvertedDoublePendulum-v5"], "You must specify 'dataset'"),
]


@pytest.mark.parametrize("overrides, message", REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_cli_refuses_in_one_line_with_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)  # Hydra's default output directories would appear here
    run = tmp_path / "run"
    code = main(["train", *overrides, *FAST, "threads=1", f"hydra.run.dir={run}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_calql_on_data_without_episode_ends(tmp_path, capsys):
    raw = make_episodes([60], ["timeout"], obs_dim=9, act_dim=1)  # InvertedDoublePendulum's sizes
    raw["timeouts"][:] = False  # no terminal, no time limit: one "episode" of every row
    path = write_d4rl_hdf5(tmp_path / "flat.hdf5", raw, {"env_id": "InvertedDoublePendulum-v5"})
    run = tmp_path / "run"
    code = main(["train", "agent=calql", "dataset=hdf5", f"dataset.path={path}", "agent.hidden_dims=[8]",
                 "trainer.pretrain_steps=2", "trainer.steps=2", "device=cpu", "threads=1", f"hydra.run.dir={run}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{path}: returns-to-go need the episodes' ends" in err and "no row before the last ends an episode" in err
    assert not run.exists()
