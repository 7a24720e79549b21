"""EXPO (docs/algorithms/expo.md): the on-the-fly argmax, bounded edits, the TD target, what each step trains,
the base policy's EMA, the UTD minibatches through the trainer, config ranges and the command contract."""

import json
import math

import pytest
import torch
from torch import Tensor, nn

from offrl.agents import make_agent
from offrl.agents.expo import EXPO, SharedTimeDenoiser, cosine_lr
from offrl.cli import main
from offrl.core.errors import ConfigError
from offrl.data.store import Batch
from tests.conftest import FAST, keep_gradients

OBS, ACT = 5, 2
TINY = {"name": "expo", "hidden_dims": [16, 16], "num_qs": 4, "num_min_qs": 2, "num_samples": 3,
        "num_edit_samples": 3, "base_hidden": 16, "base_blocks": 1, "base_block_hidden": 32, "time_features": 8,
        "time_hidden": 16, "diffusion_steps": 4}
# the same tiny sizes on the command line
TINY_CLI = ["agent.hidden_dims=[16,16]", "agent.num_qs=4", "agent.num_samples=2", "agent.num_edit_samples=2",
            "agent.base_hidden=16", "agent.base_blocks=1", "agent.base_block_hidden=32", "agent.time_features=8",
            "agent.time_hidden=16", "device=cpu", "threads=1"]


def _agent(**changes) -> EXPO:
    torch.manual_seed(0)
    return make_agent({**TINY, **changes}, OBS, ACT)


def _batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 1.8 - 0.9,
                 torch.randn(n, generator=g), torch.randn(n, OBS, generator=g),
                 (torch.rand(n, generator=g) < 0.2).float())


class KnownQ(nn.Module):
    """A stand-in target critic with a known Q: -(distance of the action to ``goal``)^2 plus a per-member offset;
    records what it was asked."""

    def __init__(self, goal: Tensor, num_qs: int) -> None:
        super().__init__()
        self.goal, self.offsets, self.calls = goal, torch.arange(num_qs, dtype=torch.float32), []

    def forward(self, obs, actions, members=slice(None)):
        self.calls.append((obs, actions, members))
        q = -(actions - self.goal).pow(2).sum(-1)
        return q[None] + self.offsets[members][:, None]


def test_argmax_picks_the_highest_q_of_all_base_and_edited_candidates():
    agent = _agent(edit_scale=0.7)
    stub = KnownQ(torch.tensor([0.9, -0.9]), agent.cfg.num_qs)
    agent.critic_target = stub
    obs = torch.randn(6, OBS)
    chosen = agent.act(obs)
    (_, actions, members), = stub.calls
    C = agent.cfg.num_samples + agent.cfg.num_edit_samples
    assert actions.shape == (6 * C, ACT)  # every state's 2N candidates in one pass
    assert isinstance(members, Tensor) and len(set(members.tolist())) == agent.cfg.num_min_qs  # without replacement
    candidates = actions.view(6, C, ACT)
    q = -(candidates - stub.goal).pow(2).sum(-1)
    torch.testing.assert_close(chosen, candidates[torch.arange(6), q.argmax(1)])
    assert chosen.shape == (6, ACT) and chosen.abs().max() <= 1.0
    assert set(agent.act_metrics) == {"act_edited_win_frac", "act_chosen_q"}


def test_on_the_fly_takes_the_min_over_the_target_subset():
    agent = _agent()
    agent.target_subset = lambda: torch.tensor([3, 1])
    obs = torch.randn(4, OBS)
    candidates = []
    real = agent.critic_target
    real.register_forward_hook(lambda module, args, out: candidates.append(args[1]))
    torch.manual_seed(1)
    chosen, info = agent.on_the_fly(obs, agent.denoiser)
    C = agent.cfg.num_samples + agent.cfg.num_edit_samples
    cand = candidates[0].view(4, C, ACT)
    q = real(obs.repeat_interleave(C, 0), cand.reshape(-1, ACT))[[3, 1]].min(0).values.view(4, C)
    torch.testing.assert_close(chosen, cand[torch.arange(4), q.argmax(1)])
    torch.testing.assert_close(info["chosen_q"], q.max(1).values.mean())


@pytest.mark.parametrize("clip", [True, False])
def test_edits_stay_within_beta(clip):
    beta = 0.3
    agent = _agent(edit_scale=beta, clip_candidates=clip)
    batch = _batch(256)
    edited, log_p = agent.edit(batch.obs, batch.actions)
    assert ((edited - batch.actions).abs() <= beta + 1e-6).all()
    stub = KnownQ(torch.zeros(ACT), agent.cfg.num_qs)
    agent.critic_target = stub
    agent.act(torch.randn(64, OBS))
    N, E = agent.cfg.num_samples, agent.cfg.num_edit_samples
    cand = stub.calls[0][1].view(64, N + E, ACT)
    moved = (cand[:, N:] - cand[:, :E]).abs()
    assert (moved <= beta + 1e-6).all() and moved.max() > 0.05  # the edit of base sample i is candidate N + i
    if clip:
        assert (cand.abs() <= 1.0).all()


def test_edit_log_density_is_the_tanh_gaussian_minus_act_dim_log_beta():
    agent = _agent(edit_scale=0.25)
    obs, actions = torch.randn(8, OBS), torch.rand(8, ACT) * 2 - 1
    torch.manual_seed(3)
    edited, log_p = agent.edit(obs, actions)
    torch.manual_seed(3)
    u, log_pi = agent.edit_actor(torch.cat([obs, actions], -1))
    torch.testing.assert_close(edited, actions + 0.25 * u)
    torch.testing.assert_close(log_p, log_pi - ACT * math.log(0.25))
    assert agent.target_entropy == -ACT / 2
    assert _agent(edit_scale=0.25, adjust_target_entropy=True).target_entropy == pytest.approx(
        -ACT / 2 + ACT * math.log(0.25))


def test_td_target_uses_the_selected_action_under_the_target_critic_with_min_over_the_subset():
    agent = _agent(discount=0.9)
    batch = _batch(16)
    for p in agent.critic.parameters():  # make the target differ from the online critic
        p.data.add_(0.1 * torch.randn_like(p))
    next_actions = torch.rand(16, ACT) * 2 - 1
    seen = []
    agent.on_the_fly = lambda obs, denoiser: (seen.append((obs, denoiser)), (next_actions, {
        "edited_win_frac": torch.tensor(0.0), "chosen_q": torch.tensor(0.0)}))[1]
    agent.target_subset = lambda: torch.tensor([2, 0])
    with torch.no_grad():
        q_target = agent.critic_target(batch.next_obs, next_actions)  # (K, B), before the Polyak step
        y = batch.rewards + 0.9 * (1 - batch.dones) * torch.minimum(q_target[2], q_target[0])
        q = agent.critic(batch.obs, batch.actions)
        expected_loss = (q - y).pow(2).mean()
    metrics = agent.critic_update(batch)
    assert seen[0][0] is batch.next_obs and seen[0][1] is agent.denoiser  # online diffusion in the backup
    torch.testing.assert_close(metrics["critic_loss"], expected_loss)
    torch.testing.assert_close(metrics["target_q"], y.mean())
    torch.testing.assert_close(metrics["q_ensemble_std"], q.std(0).mean())


def test_acting_uses_the_ema_base_policy():
    agent = _agent()
    seen = []
    agent.on_the_fly = lambda obs, denoiser: (seen.append(denoiser), (torch.zeros(len(obs), ACT), {}))[1]
    agent.act(torch.randn(3, OBS), deterministic=True)
    agent.act(torch.randn(3, OBS), deterministic=False)
    assert seen == [agent.denoiser_ema, agent.denoiser_ema]


def _params(agent):
    return {name: p.detach().clone() for name, p in agent.named_parameters()}


def _groups(names):
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("step, trained", [
    ("critic_step", {"critic"}), ("base_step", {"denoiser"}), ("edit_step", {"edit_actor"}),
    ("temperature_step", {"log_alpha"})])
def test_each_step_trains_only_its_part(step, trained):
    agent = _agent()
    batch = _batch()
    agent.update(batch)  # every part has moved once: the targets differ from their sources
    keep_gradients(agent)
    before = _params(agent)
    with torch.no_grad():
        target_before = [p.clone() for p in agent.critic_target.parameters()]
        ema_before = [p.clone() for p in agent.denoiser_ema.parameters()]
    arg = torch.tensor(-1.5) if step == "temperature_step" else batch
    getattr(agent, step)(arg)
    with_grad = {n for n, p in agent.named_parameters() if p.grad is not None}
    changed = {n for n, p in agent.named_parameters() if p.requires_grad and not torch.equal(p, before[n])}
    assert _groups(with_grad) == trained and _groups(changed) == trained  # the trained (not target) parameters
    target_moved = any(not torch.equal(a, b) for a, b in zip(target_before, agent.critic_target.parameters()))
    ema_moved = any(not torch.equal(a, b) for a, b in zip(ema_before, agent.denoiser_ema.parameters()))
    assert target_moved == (step == "critic_step") and ema_moved == (step == "base_step")


def test_policy_update_is_one_base_one_edit_one_temperature_step_and_pretraining_only_the_base():
    agent = _agent()
    batch = _batch()
    agent.policy_update(batch)
    steps = {name: int(opt.state_dict()["state"][0]["step"]) if opt.state_dict()["state"] else 0
             for name, opt in agent.optimizers.items()}
    assert steps == {"critic": 0, "edit": 1, "base": 1, "alpha": 1}
    fresh = _agent()
    before = _params(fresh)
    metrics = fresh.pretrain_update(batch)
    changed = _groups(n for n, p in fresh.named_parameters() if not torch.equal(p, before[n]))
    assert changed == {"denoiser", "denoiser_ema"} and set(metrics) == {"base_loss"}
    rows = []
    partial = _agent(pretrain_batch_size=8)  # the official code: the last minibatch only
    partial.base_step = lambda b: (rows.append(b), {})[1]
    partial.pretrain_update(batch)
    torch.testing.assert_close(rows[-1].obs, batch.obs[-8:])


@pytest.mark.parametrize("rate", [0.001, 0.25])
def test_ema_moves_by_its_rate(rate):
    agent = _agent(ema_rate=rate)
    batch = _batch()
    agent.base_step(batch)
    ema0 = [p.clone() for p in agent.denoiser_ema.parameters()]
    agent.base_step(batch)
    for e0, e1, p1 in zip(ema0, agent.denoiser_ema.parameters(), agent.denoiser.parameters()):
        torch.testing.assert_close(e1, e0 + rate * (p1 - e0), rtol=1e-5, atol=1e-7)


def test_cosine_decay_of_the_base_and_edit_learning_rates():
    agent = _agent(decay_steps=4, base_lr=1e-3, edit_lr=2e-3)
    batch = _batch()
    lrs = []
    for _ in range(6):
        agent.policy_update(batch)
        lrs.append(tuple(float(agent.optimizers[name].param_groups[0]["lr"]) for name in ("base", "edit")))
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * min(k, 4) / 4)) for k in range(6)]
    assert [b for b, _ in lrs] == pytest.approx(expected) and [e for _, e in lrs] == pytest.approx(
        [2 * x for x in expected])
    assert agent.optimizers["critic"].param_groups[0]["lr"] == 3e-4 == agent.optimizers["alpha"].param_groups[0]["lr"]
    assert cosine_lr(0.1, 10, None) == 0.1
    assert agent.optimizers["base"].param_groups[0]["weight_decay"] == 1e-4
    state = agent.state_dict()
    other = _agent(decay_steps=4)
    other.load_state_dict(state)
    assert (other.pretrain_steps, other.num_updates) == (0, 6)


def test_shared_time_denoiser_is_the_denoisers_own_function():
    agent = _agent()
    x, cond = torch.randn(7, ACT), torch.randn(7, OBS)
    for t in (0.0, 3.0):
        level = torch.tensor(t)
        torch.testing.assert_close(SharedTimeDenoiser(agent.denoiser)(x, level, cond), agent.denoiser(x, level, cond))
    levels = torch.arange(7.0) % 4
    torch.testing.assert_close(SharedTimeDenoiser(agent.denoiser)(x, levels, cond), agent.denoiser(x, levels, cond))


@pytest.mark.parametrize("changes, field", [
    ({"num_samples": 0}, "num_samples"), ({"edit_scale": 0.0}, "edit_scale"),
    ({"edit_scale": float("inf")}, "edit_scale"), ({"edit_scale": float("nan")}, "edit_scale"),
    ({"num_min_qs": 5}, "num_min_qs"), ({"num_edit_samples": 4}, "num_edit_samples"),
    ({"ema_rate": 0.0}, "ema_rate"), ({"tau": 1.5}, "tau"), ({"decay_steps": 0}, "decay_steps"),
    ({"diffusion_steps": 0}, "diffusion_steps"), ({"edit_dropout": 1.0}, "edit_dropout"),
    ({"base_lr": -1.0}, "base_lr"), ({"time_features": 7}, "time_features"),
    ({"pretrain_batch_size": 0}, "pretrain_batch_size")])
def test_config_ranges(changes, field):
    with pytest.raises(ConfigError, match=rf"^agent\.{field}=") as err:
        _agent(**changes)
    assert "\n" not in str(err.value)


def test_no_density_and_no_export():
    agent = _agent()
    with pytest.raises(ConfigError, match="no policy density"):
        agent.log_prob(torch.randn(2, OBS), torch.zeros(2, ACT))
    with pytest.raises(ConfigError, match="cannot be exported"):
        agent.deterministic_policy()


def test_utd_minibatches_hold_offline_and_online_rows_and_pretraining_trains_the_base(
        tmp_path, small_default_dataset, monkeypatch):
    """A tiny offline_to_online run through the trainer: offline rows are marked by dataset.reward_shift=1000
    (online rewards of InvertedDoublePendulum are below 10)."""
    critic_rewards, pretrain_rows, policy_calls = [], [], []
    critic_update, pretrain_update, policy_update = EXPO.critic_update, EXPO.pretrain_update, EXPO.policy_update
    monkeypatch.setattr(EXPO, "critic_update", lambda self, b: (critic_rewards.append(b.rewards.clone()),
                                                               critic_update(self, b))[1])
    monkeypatch.setattr(EXPO, "pretrain_update", lambda self, b: (pretrain_rows.append(b.rewards.clone()),
                                                                 pretrain_update(self, b))[1])
    monkeypatch.setattr(EXPO, "policy_update", lambda self, b: (policy_calls.append(len(b.obs)),
                                                               policy_update(self, b))[1])
    run = tmp_path / "run"
    assert main(["train", "agent=expo", "dataset=idp-mixed", "trainer=offline_to_online", *TINY_CLI, *FAST[1:],
                 "dataset.reward_shift=1000", "trainer.pretrain_steps=3", "trainer.utd=4", "trainer.batch_size=16",
                 "trainer.steps=30", "trainer.warmup_steps=20", "trainer.eval_every=30", "trainer.eval_episodes=1",
                 f"hydra.run.dir={run}"]) == 0
    assert len(pretrain_rows) == 3 and all((r > 500).all() and len(r) == 64 for r in pretrain_rows)
    assert len(critic_rewards) == 4 * len(policy_calls) and len(policy_calls) == 30 - 20 + 1
    for r in critic_rewards:
        assert len(r) == 16 and (r > 500).sum() == 8 and (r < 500).sum() == 8, r
    assert set(policy_calls) == {16}
    results = json.loads((run / "results.json").read_text())
    assert results["phase_steps"] == {"pretrain": 3, "online": 30} and results["gradient_steps"] == 3 + 11


def test_command_line(tmp_path, small_default_dataset, capsys):
    run = tmp_path / "run"
    assert main(["train", "agent=expo", "dataset=idp-mixed", *FAST, *TINY_CLI, "trainer.steps=12",
                 "trainer.warmup_steps=8", "trainer.batch_size=8", "trainer.eval_every=12",
                 "trainer.eval_episodes=1", "trainer.log_every=10", f"hydra.run.dir={run}"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["agent"] == "expo" and results["phase_steps"] == {"online": 12}
    assert results["gradient_steps"] == 12 - 8 + 1  # the preset: no pre-training, utd 20, updates from step 8
    config = (run / "config.yaml").read_text()
    assert "utd: 20" in config and "offline_fraction: 0.5" in config and "mode: offline_to_online" in config
    assert any((run / "tb").iterdir())

    def one_line_error(argv) -> str:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    assert "dataset" in one_line_error(["train", "agent=expo"])  # online with offline data: a dataset is required
    assert "dataset" in one_line_error(["train", "agent=expo", "trainer=online", "env=Pendulum-v1"])
    assert "agent.num_samples" in one_line_error(["train", "agent=expo", "dataset=idp-mixed", "agent.num_samples=0"])
    mismatch = one_line_error(["train", "agent=expo", "dataset=idp-mixed", *FAST, *TINY_CLI, "env=Pendulum-v1",
                               f"hydra.run.dir={tmp_path / 'mismatch'}"])
    assert "Pendulum-v1" in mismatch and not (tmp_path / "mismatch").exists()
    assert "cannot be exported" in one_line_error(["export", str(run), "--format", "torchscript"])
    assert main(["train", "agent=expo_cpu", "dataset=idp-mixed", "--cfg", "job"]) == 0
    shown = capsys.readouterr().out
    assert "num_qs: 4" in shown and "utd: 2" in shown and "name: expo" in shown
