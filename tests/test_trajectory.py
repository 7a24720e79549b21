"""PGD's trajectory side (docs/algorithms/pgd.md): windows, normalisation, decoding, the EDM trajectory
model (save/load, guidance, reproducibility) and ``offrl diffusion train/sample``."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch

from offrl.agents import make_agent
from offrl.cli.diffusion import main as diffusion_main
from offrl.core import checkpoint
from offrl.core.errors import OffrlError
from offrl.data.d4rl import read_d4rl_hdf5, write_d4rl_hdf5
from offrl.data.sources import DatasetConfig, load_dataset
from offrl.data.store import ObsNormalizer, TransitionStore
from offrl.data.windows import TrajectoryWindows, split_episodes
from offrl.diffusion.trajectory import (
    TrajectoryModel,
    TrajectoryModelConfig,
    agent_guidance,
    load_model,
    make_optimizer,
    sample,
    save_model,
    train_step,
)
from tests.conftest import make_episodes

TINY = dict(features=16, groups=8, sampler_steps=8, sample_horizon=17, device="cpu", ema_decay=0.9, ema_every=1)
LENGTHS = [40, 50, 10, 5, 37, 23]
ENDS = ["terminal", "timeout", "terminal", "terminal", "timeout", "terminal"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def episode_store(tmp_path, lengths=LENGTHS, ends=ENDS) -> TransitionStore:
    raw = make_episodes(lengths, ends, obs_dim=3, act_dim=2)
    raw["actions"][0] = [1.0, -1.0]  # saturated entries: clipped to +-0.999 before atanh
    return TransitionStore.from_data(read_d4rl_hdf5(write_d4rl_hdf5(tmp_path / "eps.hdf5", raw), name="eps"))


def expected_starts(lengths, ends, horizon, stride) -> set[int]:
    starts, a = set(), 0
    for length, end in zip(lengths, ends):
        b = a + length
        last = b - horizon if end == "terminal" else b - horizon - 1
        if last >= a:
            starts |= set(range(a, last + 1, stride)) | ({last} if end == "terminal" else set())
        a = b
    return starts


def test_windows_stay_inside_episodes_and_follow_pgds_rules(tmp_path):
    store = episode_store(tmp_path)
    horizon, stride = 8, 3
    windows = TrajectoryWindows(store, horizon, stride, val_fraction=0.0)
    assert set(windows.train_starts.tolist()) == expected_starts(LENGTHS, ENDS, horizon, stride)
    assert windows.channels == 3 + 2 + 2
    batch = windows.sample(256, torch.Generator().manual_seed(0))
    assert batch.shape == (256, horizon, 7) and batch.device == store.device
    all_windows = windows.windows(windows.train_starts)
    raw = windows.normalizer.unnormalize(all_windows)
    obs = raw[..., 0].round()
    episode, t = obs // 1000, obs % 1000
    assert (episode == episode[:, :1]).all(), "a window crossed an episode boundary"
    assert (t.diff(dim=1) == 1).all()
    last_t = t[:, -1].long()
    for e, (length, end) in enumerate(zip(LENGTHS, ENDS)):
        mine = episode[:, 0] == e
        if length < horizon:
            assert not mine.any(), "an episode shorter than the horizon gave a window"
            continue
        assert (t[mine, 0] == 0).any(), "every episode start is a window"
        if end == "terminal":
            assert (last_t[mine] == length - 1).any(), "the window ending on the terminal step is kept"
        else:
            assert (last_t[mine] < length - 1).all(), "a window ending on a time limit was kept"
    done = raw[..., -1].round()
    assert (done[:, :-1] == 0).all(), "a done flag inside a window"
    assert done[:, -1].sum() == sum(1 for n, e in zip(LENGTHS, ENDS) if e == "terminal" and n >= horizon)


def test_normalisation_round_trip_with_pre_tanh_actions(tmp_path):
    store = episode_store(tmp_path)
    windows = TrajectoryWindows(store, 8, 3, val_fraction=0.0)
    norm = windows.normalizer
    raw = norm.unnormalize(windows.table)
    n = len(store)
    torch.testing.assert_close(raw[:, :3], store.obs[:n], rtol=1e-5, atol=1e-3)
    clipped = store.actions[:n].clamp(-0.999, 0.999)
    torch.testing.assert_close(raw[:, 3:5], torch.atanh(clipped), rtol=1e-4, atol=1e-4)
    assert abs(float(raw[0, 3]) - float(np.arctanh(0.999))) < 1e-3  # the saturated action, clipped first
    torch.testing.assert_close(norm.actions(windows.table), clipped, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(raw[:, 5], store.rewards[:n], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(raw[:, 6], store.dones[:n])
    # every channel is standardised over the training windows' rows
    flat = windows.windows(windows.train_starts).reshape(-1, 7)
    torch.testing.assert_close(flat.mean(0), torch.zeros(7), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(0, unbiased=False), torch.ones(7), atol=1e-4, rtol=0)
    # the statistics travel with a state dict and rebuild the same table
    again = TrajectoryWindows(store, 8, 3, val_fraction=0.0, normalizer=type(norm).from_state_dict(norm.state_dict()))
    torch.testing.assert_close(again.table, windows.table)


def test_validation_split_is_deterministic_and_held_out(tmp_path):
    lengths, ends = [20] * 20, ["timeout"] * 20
    store = episode_store(tmp_path, lengths, ends)
    a = TrajectoryWindows(store, 8, 4, val_fraction=0.2, seed=3)
    b = TrajectoryWindows(store, 8, 4, val_fraction=0.2, seed=3)
    assert (a.val_episodes == b.val_episodes).all() and a.val_episodes.sum() == 4
    assert torch.equal(a.val_starts, b.val_starts) and len(a.val_starts) > 0
    train_eps = set((a.train_starts // 20).tolist())
    val_eps = set((a.val_starts // 20).tolist())
    assert not train_eps & val_eps and val_eps == set(np.flatnonzero(a.val_episodes).tolist())
    assert split_episodes(20, 0.2, 4).sum() == 4 and split_episodes(3, 0.05, 0).sum() == 1
    assert sum(len(v) for v in a.validation_batches(5)) == len(a.val_starts)


def test_decode_gives_valid_transitions(tmp_path):
    store = episode_store(tmp_path)
    windows = TrajectoryWindows(store, 8, 3, val_fraction=0.0)
    x = windows.windows(windows.train_starts)
    batch = windows.decode(x)
    b = len(windows.train_starts)
    assert batch.obs.shape == (b * 7, 3) and batch.actions.shape == (b * 7, 2) and batch.rewards.shape == (b * 7,)
    first = batch.obs.reshape(b, 7, 3)
    nxt = batch.next_obs.reshape(b, 7, 3)
    torch.testing.assert_close(nxt[:, :-1], first[:, 1:])  # next_obs = the next row's obs within a window
    torch.testing.assert_close(nxt[:, :, 0].round() - first[:, :, 0].round(), torch.ones(b, 7))  # real successors
    # noisy windows still decode to valid transitions
    noisy = windows.decode(x + 3.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    assert noisy.actions.abs().max() <= 1.0
    assert set(noisy.dones.unique().tolist()) <= {0.0, 1.0}


# ---------------------------------------------------------------------- model
@pytest.fixture(scope="module")
def idp(small_default_dataset):
    data = load_dataset(DatasetConfig(name="idp-mixed", size=5000), log=lambda line: None)
    return data, TransitionStore.from_data(data)


@pytest.fixture(scope="module")
def trained(idp):
    data, store = idp
    torch.set_num_threads(1)
    cfg = TrajectoryModelConfig.cpu(**TINY, steps=150)
    windows = TrajectoryWindows(store, cfg.horizon, cfg.stride, cfg.val_fraction, cfg.seed)
    torch.manual_seed(0)
    model = TrajectoryModel(cfg, windows.normalizer, "idp-mixed-5000")
    opt, schedule = make_optimizer(model, cfg.steps)
    gen = torch.Generator().manual_seed(0)
    probe = windows.sample(256, torch.Generator().manual_seed(1))
    first = float(model.ema_loss(probe, torch.Generator().manual_seed(2)))
    for step in range(cfg.steps):
        train_step(model, opt, schedule, windows.sample(cfg.batch_size, gen), step, gen)
    last = float(model.ema_loss(probe, torch.Generator().manual_seed(2)))
    assert last < first, (first, last)
    return model


def test_model_save_load_round_trip_and_errors(trained, tmp_path):
    path = save_model(trained, tmp_path / "run")
    assert path.name == "model.pt"
    loaded = load_model(tmp_path / "run", dataset="idp-mixed-5000", obs_dim=trained.obs_dim, act_dim=trained.act_dim)
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    torch.testing.assert_close(loaded.normalizer.mean, trained.normalizer.mean)
    assert loaded.cfg == trained.cfg and loaded.dataset == "idp-mixed-5000"
    x1 = sample(trained, 3, generator=torch.Generator().manual_seed(5))
    x2 = sample(loaded, 3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(x1, x2)

    def one_line_error(*args, **kwargs) -> str:
        with pytest.raises(OffrlError) as err:
            load_model(*args, **kwargs)
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "no such model directory" in one_line_error(tmp_path / "missing" / "dir")
    (tmp_path / "empty").mkdir()
    assert "no trajectory model" in one_line_error(tmp_path / "empty")
    truncated = tmp_path / "cut" / "model.pt"
    truncated.parent.mkdir()
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "truncated" in one_line_error(tmp_path / "cut")
    assert "another dataset" in one_line_error(path, dataset="hopper-medium")
    assert "obs_dim" in one_line_error(path, obs_dim=trained.obs_dim + 1)
    assert "act_dim" in one_line_error(path, act_dim=trained.act_dim + 1)


def test_sampling_is_reproducible_and_shaped(trained):
    a = sample(trained, 4, generator=torch.Generator().manual_seed(0))
    b = sample(trained, 4, generator=torch.Generator().manual_seed(0))
    c = sample(trained, 4, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, trained.cfg.sample_horizon, trained.channels)
    assert torch.equal(a, b) and not torch.equal(a, c)
    chunked = sample(trained, 4, generator=torch.Generator().manual_seed(0), batch_size=2, horizon=9)
    assert chunked.shape == (4, 9, trained.channels)


def test_guidance_moves_only_actions_and_raises_agent_likelihood(trained, idp):
    data, _ = idp
    agent = make_agent({"name": "td3bc", "hidden_dims": [16, 16]}, trained.obs_dim, trained.act_dim)
    obs_norm = ObsNormalizer.fit(data.observations)
    guide = agent_guidance(trained, agent, obs_norm)
    x = torch.randn(3, 16, trained.channels, generator=torch.Generator().manual_seed(0))
    g = guide(x, torch.tensor(1.0))
    action = trained.normalizer.action_slice
    assert g[..., action].abs().sum() > 0
    others = torch.ones(trained.channels, dtype=torch.bool)
    others[action] = False
    assert (g[..., others] == 0).all(), "guidance touched a non-action channel"
    assert torch.equal(trained.normalizer.action_mask().bool(), ~others)

    def likelihood(windows):
        batch = trained.decode(windows)
        with torch.no_grad():
            return float(agent.log_prob(obs_norm(batch.obs), batch.actions).mean())

    kwargs = dict(agent=agent, obs_transform=obs_norm, num_steps=16)
    plain = sample(trained, 16, generator=torch.Generator().manual_seed(0), **kwargs)  # coef 0: unguided
    unguided = sample(trained, 16, generator=torch.Generator().manual_seed(0), num_steps=16)
    torch.testing.assert_close(plain, unguided)
    guided = sample(trained, 16, generator=torch.Generator().manual_seed(0), guidance_coef=1.0, **kwargs)
    assert likelihood(guided) > likelihood(unguided) + 0.01, (likelihood(guided), likelihood(unguided))


# ---------------------------------------------------------------------- CLI
def test_cli_train_sample_read_back_and_resume(small_default_dataset, tmp_path, capsys):
    run = tmp_path / "diff"
    common = ["features=16", "sampler_steps=4", "log_every=5", "val_every=10", "checkpoint_every=10", "device=cpu"]
    assert diffusion_main(["train", "dataset=idp-mixed", "size=5000", f"dir={run}", "preset=cpu", "steps=20",
                           *common]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == 20 and results["updates_per_s"] > 0 and results["val_loss"] is not None
    assert list((run / "tb").iterdir()) and (run / "checkpoints" / "best.pt").is_file()
    capsys.readouterr()
    assert diffusion_main(["train", f"resume={run}", "steps=30"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == 30 and results["gradient_steps"] == 30
    assert "resuming from" in capsys.readouterr().out  # continued the run, not a new one
    out = tmp_path / "synthetic.hdf5"
    assert diffusion_main(["sample", str(run), "--num", "3", "--horizon", "9", "--out", str(out)]) == 0
    data = read_d4rl_hdf5(out)
    model = load_model(run)
    assert len(data) == 3 * 8 and (data.obs_dim, data.act_dim) == (model.obs_dim, model.act_dim)
    assert np.abs(data.actions).max() <= 1.0
    assert data.info.extra["synthetic_model"].endswith("model.pt")
    assert data.info.extra["synthetic_dataset"] == "idp-mixed-5000"
    assert data.episode_ends.sum() >= 3
    # a second run into the same directory, a bad key, a missing model: one-line errors, status 2
    capsys.readouterr()
    assert diffusion_main(["train", "dataset=idp-mixed", "size=5000", f"dir={run}", "steps=5"]) == 2
    assert diffusion_main(["train", "dataset=idp-mixed", "size=5000", f"dir={tmp_path / 'x'}", "featurs=8"]) == 2
    assert diffusion_main(["sample", str(tmp_path / "nothing"), "--num", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "featurs" in err[1], err
    for flag, value in (("--num", "0"), ("--steps", "-3"), ("--batch", "nan"), ("--horizon", "0")):
        bad = tmp_path / "bad.hdf5"
        argv = ["sample", str(run), "--num", "3", "--out", str(bad)]
        argv = [*argv[:argv.index("--num")], *argv[argv.index("--num") + 2:]] if flag == "--num" else argv
        assert diffusion_main([*argv, flag, value]) == 2 and not bad.exists()
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and flag in err[0] and value in err[0], err


def test_resume_is_exact(small_default_dataset, tmp_path, monkeypatch):
    import offrl.diffusion.trajectory as trajectory

    args = ["dataset=idp-mixed", "size=5000", "preset=cpu", "features=16", "steps=16", "val_every=8",
            "checkpoint_every=100", "device=cpu"]
    assert diffusion_main(["train", f"dir={tmp_path / 'a'}", *args]) == 0
    real = trajectory.train_step

    def interrupting(model, opt, schedule, windows, step, generator=None):
        loss = real(model, opt, schedule, windows, step, generator)
        if step == 6:  # Ctrl-C during the 7th step: the run stops after it
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(trajectory, "train_step", interrupting)
    assert diffusion_main(["train", f"dir={tmp_path / 'b'}", *args]) == 130
    monkeypatch.setattr(trajectory, "train_step", real)
    assert checkpoint.load(tmp_path / "b" / "checkpoints" / "last.pt")["phases"]["offline"]["step"] == 7
    assert diffusion_main(["train", f"resume={tmp_path / 'b'}"]) == 0
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), name


def test_cli_train_bad_input_is_one_line_and_writes_nothing(small_default_dataset, tmp_path, capsys):
    """offrl diffusion train runs on the trainer's machinery, so its bad input is handled like offrl train's:
    a misspelt option, a wrong type, a bad thread count and an unwritable run directory are one line, exit 2,
    and leave nothing behind."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    base = ["train", "dataset=idp-mixed", "size=5000", "preset=cpu", "steps=5", "device=cpu"]
    cases = {"featurs=8": "featurs is not an option; did you mean features?",
             "steps=many": "steps: Value 'many'",
             "threads=0": "threads=0: expected a positive integer",
             f"dir={blocker / 'run'}": f"{blocker} is a file, not a directory"}
    for word, expected in cases.items():
        capsys.readouterr()
        run_dir = [] if word.startswith("dir=") else [f"dir={tmp_path / 'run'}"]
        assert diffusion_main([*base, *run_dir, word]) == 2, word
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (word, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"], word
