"""Reliability: exact resume in every training mode, Ctrl-C, faults while checkpointing, the run lock,
resume refusals, command-line mistakes (one line, exit 2, nothing written), and the hand-checked
properties of updates that weaker tests used to take on trust."""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from offrl.agents import make_agent
from offrl.cli import main
from offrl.core import checkpoint
from offrl.core.errors import OffrlError
from offrl.data.batches import Mixture
from offrl.data.d4rl import write_d4rl_hdf5
from offrl.data.store import Batch
from tests.conftest import FAST, make_episodes

ONLINE = ["env=Pendulum-v1", "agent.hidden_dims=[32,32]", "trainer.warmup_steps=200", "trainer.eval_episodes=1",
          "trainer.log_every=100", "threads=1", "seed=3", "device=cpu"]
MODES = {
    # name: (arguments, total steps, checkpoint interval)
    "sac-online": (["agent=sac", *ONLINE, "trainer.num_envs=2"], 1200, 300),
    "pmoe-online": (["agent=pmoe", *ONLINE], 900, 300),
    "td3bc-o2o-killed-in-pretraining": (["agent=td3bc", "trainer=offline_to_online", *FAST, "threads=1", "seed=3",
                                        "trainer.pretrain_steps=600", "trainer.eval_episodes=1"], 500, 200),
    "td3bc-o2o-killed-online": (["agent=td3bc", "trainer=offline_to_online", *FAST, "threads=1", "seed=3",
                                 "trainer.pretrain_steps=100", "trainer.warmup_steps=50", "trainer.num_envs=2",
                                 "trainer.eval_episodes=1"], 600, 150),
}


def _args(mode: str) -> list[str]:
    args, steps, every = MODES[mode]
    return [*args, f"trainer.steps={steps}", f"trainer.checkpoint_every={every}", f"trainer.eval_every={steps}"]


def _start(args: list[str], run: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "offrl.cli", "train", *args, f"hydra.run.dir={run}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, run: Path) -> None:
    deadline = time.time() + 180
    while not (run / "checkpoints" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"


def _assert_same_run(a: Path, b: Path) -> None:
    sa, sb = (checkpoint.load(d / "checkpoints" / "last.pt") for d in (a, b))
    assert sa["agent"].keys() == sb["agent"].keys()
    for key, value in sb["agent"].items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(sa["agent"][key], value, rtol=0, atol=0, msg=key)
    assert sa["update_step"] == sb["update_step"]
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert ra["return_mean"] == rb["return_mean"] and ra["phase_steps"] == rb["phase_steps"]
    for name, phase in sb["phases"].items():
        if "replay" in phase:
            for key in ("obs", "actions", "rewards", "dones", "episode_ends"):
                torch.testing.assert_close(sa["phases"][name]["replay"][key], phase["replay"][key], rtol=0, atol=0)


@pytest.mark.parametrize("mode", list(MODES))
def test_kill_9_then_resume_equals_the_uninterrupted_run(tmp_path, small_default_dataset, mode):
    reference = tmp_path / "uninterrupted"
    assert main(["train", *_args(mode), f"hydra.run.dir={reference}"]) == 0
    killed = tmp_path / "killed"
    proc = _start(_args(mode), killed)
    _wait_for_checkpoint(proc, killed)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = checkpoint.load(killed / "checkpoints" / "last.pt")
    _, steps, _ = MODES[mode]
    assert state["phases"]["online"]["step"] < steps and not (killed / "results.json").exists()
    if mode.endswith("pretraining"):
        assert 0 < state["phases"]["pretrain"]["step"] < 600 and state["phases"]["online"]["step"] == 0
    assert main(["train", f"resume={killed}"]) == 0
    _assert_same_run(killed, reference)


def test_ctrl_c_and_sigterm_checkpoint_say_how_to_resume_and_resume_exactly(tmp_path):
    """Ctrl-C, and SIGTERM (what SLURM and Kubernetes send before stopping or preempting a job), finish the step,
    checkpoint and exit 130 / 143 with the resume command; the resumed run equals the uninterrupted one."""
    args = ["agent=sac", *ONLINE, "trainer.steps=1200", "trainer.checkpoint_every=100", "trainer.eval_every=1200"]
    reference = tmp_path / "uninterrupted"
    assert main(["train", *args, f"hydra.run.dir={reference}"]) == 0
    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        run = tmp_path / signal.Signals(signum).name
        proc = _start(args, run)
        _wait_for_checkpoint(proc, run)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == status, err
        assert "Traceback" not in err and f"continue with: offrl train resume={run}" in err
        assert checkpoint.load(run / "checkpoints" / "last.pt")["phases"]["online"]["step"] < 1200
        assert main(["train", f"resume={run}"]) == 0
        _assert_same_run(run, reference)


# ---------------------------------------------------------------------- faults while checkpointing
def _short_run(run: Path, *extra: str) -> int:
    return main(["train", *FAST, "trainer.steps=20", "trainer.checkpoint_every=10", "trainer.eval_every=20",
                 "threads=1", f"hydra.run.dir={run}", *extra])


def test_a_torn_temp_file_from_a_killed_write_does_not_break_resume(tmp_path, small_default_dataset):
    run = tmp_path / "run"
    assert _short_run(run) == 0
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    torn = run / "checkpoints" / ".last.12345.tmp.pt"
    torn.write_bytes(before[: len(before) // 3])  # what a kill in the middle of torch.save leaves
    assert main(["train", f"resume={run}", "trainer.steps=30"]) == 0
    assert checkpoint.load(last)["phases"]["offline"]["step"] == 30 and not torn.exists()


@pytest.mark.parametrize("failure", ["oserror", "torch"])
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, small_default_dataset, monkeypatch, capsys,
                                                              failure):
    """A full disk as the OS reports it (ENOSPC) and as torch.save reports it (RuntimeError: unexpected pos)."""
    run = tmp_path / "run"
    assert _short_run(run) == 0
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        if failure == "torch":
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 2048 vs 1990")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    code = main(["train", f"resume={run}", "trainer.steps=40"])
    err = capsys.readouterr().err
    reason = "unexpected pos 2048 vs 1990" if failure == "torch" else "No space left on device"
    assert code == 2 and f"{last}: cannot write checkpoint (" in err and reason in err, err
    assert "previous checkpoint" in err and "Traceback" not in err
    monkeypatch.undo()
    assert last.read_bytes() == before and not list(last.parent.glob(".*tmp*"))
    assert checkpoint.load(last)["phases"]["offline"]["step"] == 20


def test_unwritable_checkpoint_directory_is_named(tmp_path, small_default_dataset, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("not a directory")  # root ignores permission bits; this it cannot pass
    assert _short_run(run) == 2
    assert f"{run / 'checkpoints' / 'last.pt'}: cannot write checkpoint" in capsys.readouterr().err


def test_any_path_a_user_can_create_trains_and_resumes(tmp_path, small_default_dataset, capsys):
    """Spaces, commas, '=', quotes and non-ASCII in a run directory (Hydra's grammar refuses or splits such values
    unquoted: the command line quotes path overrides)."""
    run = tmp_path / "my runs, é's ü=1" / "run 1"
    assert _short_run(run) == 0
    assert main(["train", f"resume={run}", "trainer.steps=30", "trainer.eval_every=30"]) == 0
    assert checkpoint.load(run / "checkpoints" / "last.pt")["phases"]["offline"]["step"] == 30
    assert [p.name for p in tmp_path.iterdir()] == ["my runs, é's ü=1"]
    capsys.readouterr()
    assert _short_run(run) == 2  # the hint is a command a shell runs as printed
    assert f"offrl train resume={shlex.quote(str(run))} " in capsys.readouterr().err


def test_a_new_run_never_overwrites_a_run(tmp_path, small_default_dataset, capsys):
    """A directory that holds a run belongs to it: a new run pointed there (a single run, or a sweep's job) is
    refused in one line giving the resume command, and every file of the run stays byte-identical."""
    run = tmp_path / "run"
    assert _short_run(run) == 0
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert _short_run(run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{run} holds a run already; continue it with: offrl train resume={run}" in err[0]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files
    sweep = tmp_path / "sweep"
    args = ["train", "-m", *FAST, "trainer.steps=10", "trainer.eval_every=10", "threads=1", "seed=0,1",
            f"hydra.sweep.dir={sweep}"]
    assert main(args) == 0
    ours = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and ".hydra" not in p.parts
            and p.suffix != ".log"}
    assert main(args) == 2
    assert {p: p.read_bytes() for p in ours} == ours


def test_second_process_on_the_same_run_directory_is_refused(tmp_path, small_default_dataset, capsys):
    run = tmp_path / "run"
    with checkpoint.RunLock(run):
        assert _short_run(run) == 2
    assert "another offrl process" in capsys.readouterr().err
    assert _short_run(run) == 0  # the lock goes with its holder


# ---------------------------------------------------------------------- resume refusals
def test_resume_refusals_are_one_line_and_create_nothing(tmp_path, small_default_dataset, capsys):
    missing = tmp_path / "missing"
    assert main(["train", f"resume={missing}"]) == 2 and not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", f"resume={empty}"]) == 2 and list(empty.iterdir()) == []
    run = tmp_path / "run"
    assert _short_run(run) == 0
    before = sorted(p.name for p in run.iterdir())
    assert main(["train", f"resume={run}", "agent=bc"]) == 2
    assert main(["train", f"resume={run}", "dataset=hopper-medium"]) == 2
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=False)
    torch.save({**state, "format": 1}, last)
    assert main(["train", f"resume={run}"]) == 2
    last.write_bytes(last.read_bytes()[:1000])
    assert main(["train", f"resume={run}"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("offrl: error:")]
    assert len(lines) == 6 and "Traceback" not in "\n".join(lines)
    assert "does not exist" in lines[0] and "holds no run" in lines[1]
    assert "agent=bc would change the run's agent (td3bc)" in lines[2]
    assert "dataset=hopper-medium would change the run's dataset (idp-mixed)" in lines[3]
    assert "incompatible offrl version" in lines[4] and "truncated or unreadable" in lines[5]
    assert sorted(p.name for p in run.iterdir()) == before


# ---------------------------------------------------------------------- command-line mistakes
@pytest.mark.parametrize("args,message", [
    (["+trainer.stepz=10"], "trainer.stepz is not a trainer option; did you mean trainer.steps?"),
    (["+dataset.pathh=x"], "dataset.pathh is not a dataset option; did you mean dataset.path?"),
    (["trainer.stepz=10"], "trainer.stepz is not a trainer option; did you mean trainer.steps?"),
    (["agent=sacc"], "agent=sacc is not a known agent (did you mean sac?)"),
    (["dataset=hoper-medium"], "dataset=hoper-medium is not a known dataset (did you mean hopper-medium"),
    (["-m", "seed=0,1", "agent=bc,td3bcc"], "agent=td3bcc is not a known agent"),
    (["trainer.steps=many"], "could not be converted to Integer"),
    (["+foo=1"], "unknown top-level key(s) ['foo']"),
    (["agent=sac", "env=Hopperr-v5"],
     "env='Hopperr-v5' is not a registered gymnasium environment; did you mean Hopper-v5"),
    (["env=Hopperr-v5"], "is not a registered gymnasium environment; did you mean Hopper-v5"),
    (["agent=td3bc", "trainer=offline_to_online", "env=Hopperr-v5"], "did you mean Hopper-v5"),
])
def test_command_line_mistakes_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, small_default_dataset,
                                                                     args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("offrl: error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "multirun").exists()  # no empty run directories


@pytest.mark.parametrize("size", ["0", "-5", "many"])
def test_datasets_build_refuses_invalid_sizes(size, capsys):
    assert main(["datasets", "build", "idp-mixed", "--size", size]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--size" in err[0]


def test_datasets_of_another_size_are_stored_under_their_own_names():
    from offrl.generation.generate import minari_id
    from offrl.generation.recipes import cached_path

    assert cached_path("hopper-medium", 5000) != cached_path("hopper-medium")
    assert minari_id("hopper", "medium", 5000) != minari_id("hopper", "medium", None)


def test_divergence_guard_through_the_cli_exit_status(tmp_path, capsys):
    raw = make_episodes([50, 50], ["terminal", "timeout"], obs_dim=9, act_dim=1)
    raw["rewards"][:] = 3e38  # finite float32, but the squared TD error overflows
    path = write_d4rl_hdf5(tmp_path / "huge.hdf5", raw, {"env_id": "InvertedDoublePendulum-v5"})
    run = tmp_path / "run"
    code = main(["train", "dataset=hdf5", f"dataset.path={path}", "agent.hidden_dims=[16,16]", "trainer.steps=50",
                 "trainer.log_every=10", "trainer.eval_every=50", "trainer.eval_episodes=1", "threads=1",
                 f"hydra.run.dir={run}"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged: offline step 10: non-finite training metric(s)" in err


# ---------------------------------------------------------------------- checks that cannot pass by accident
def test_offline_to_online_batches_mix_rows_in_the_configured_share(tmp_path, small_default_dataset):
    """Offline rows carry reward exactly 1 (a marked dataset); Pendulum's online rewards are <= 0."""
    from offrl.data.arrays import DatasetInfo
    from offrl.data.store import ObsNormalizer, TransitionStore
    from offrl.training.trainer import Trainer, TrainerConfig

    store = TransitionStore(3, 1, 500)
    rng = np.random.default_rng(0)
    store.add(rng.normal(size=(500, 3)), rng.uniform(-1, 1, (500, 1)), np.ones(500), rng.normal(size=(500, 3)),
              np.zeros(500), np.zeros(500))
    cfg = TrainerConfig(mode="offline_to_online", steps=300, pretrain_steps=10, warmup_steps=100,
                        offline_fraction=0.25, eval_every=300, eval_episodes=1, checkpoint_every=300, batch_size=64)
    agent = make_agent({"name": "td3bc", "hidden_dims": [16, 16]}, 3, 1)
    info = DatasetInfo(name="marked", source="test", location="test", env_id="Pendulum-v1")
    trainer = Trainer(cfg, agent, tmp_path, 0, ObsNormalizer(3), info, store)
    trainer.run()
    online = trainer.phases[-1]
    assert isinstance(online.source, Mixture) and len(online.replay) == 300 - 1  # one autoreset step at 201
    batch = online.source.sample(64)
    offline_rows = batch.rewards == 1.0
    assert offline_rows.sum().item() == 16
    for chunk in offline_rows.float().tensor_split(8):  # any UTD split keeps the share
        assert chunk.mean().item() == 0.25
    assert trainer.update_step == 10 + (300 - 100 + 1)  # warm-up respected in offline-to-online too


def _batch(n=8, obs_dim=4, act_dim=2, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.3).float())


def test_sac_soft_target_by_hand():
    agent = make_agent({"name": "sac", "hidden_dims": [16, 16], "discount": 0.9}, 4, 2)
    batch = _batch()
    torch.manual_seed(11)
    with torch.no_grad():
        next_actions, next_log_prob = agent.actor(batch.next_obs)
        q1, q2 = (agent.critic_target(batch.next_obs, next_actions)[j] for j in range(2))
        alpha = agent.log_alpha.exp()
        y = batch.rewards + 0.9 * (1 - batch.dones) * (torch.minimum(q1, q2) - alpha * next_log_prob)
        q = agent.critic(batch.obs, batch.actions)
        loss = 0.5 * (F.mse_loss(q[0], y) + F.mse_loss(q[1], y))
    torch.manual_seed(11)
    metrics = agent.critic_step(batch)
    torch.testing.assert_close(metrics["target_q"], y.mean())
    torch.testing.assert_close(metrics["critic_loss"], loss)


def test_a2pr_value_and_vae_losses_by_hand():
    agent = make_agent({"name": "a2pr", "hidden_dims": [16], "critic_hidden_dims": [16], "vae_hidden_dims": [16],
                        "discount": 0.9, "vae_weight": 1.5, "kl_weight": 0.5}, 4, 2)
    batch = _batch(n=16)
    with torch.no_grad():
        next_actions = torch.rand(16, 2) * 2 - 1
        not_done = 0.9 * (1 - batch.dones)
        y_target = batch.rewards + not_done * agent.critic_target(batch.next_obs, next_actions).min(0).values
        y_online = batch.rewards + not_done * agent.critic(batch.next_obs, next_actions).min(0).values
        v = agent.value(batch.obs).squeeze(-1)
        expected_value_loss = ((v - torch.minimum(y_target, y_online)) ** 2).mean()
    metrics = agent.value_step(batch, next_actions, y_target, agent.value(batch.obs).squeeze(-1))
    torch.testing.assert_close(metrics["value_loss"], expected_value_loss)

    v = torch.zeros(16)
    torch.manual_seed(5)
    with torch.no_grad():
        good = (agent.critic(batch.obs, batch.actions)[0] > v).float()
        recon, mean, std = agent.vae(batch.obs, batch.actions)
        recon_loss = sum(1.5 * good[i] * ((recon[i] - batch.actions[i]) ** 2).sum() for i in range(16)) / (16 * 2)
        kl = sum(-0.5 * (1 + 2 * torch.log(std[i, k]) - mean[i, k] ** 2 - std[i, k] ** 2)
                 for i in range(16) for k in range(mean.shape[1])) / mean.numel()
    torch.manual_seed(5)
    metrics = agent.vae_step(batch, v)
    torch.testing.assert_close(metrics["vae_loss"], recon_loss + 0.5 * kl)
    torch.testing.assert_close(metrics["vae_positive_fraction"], good.mean())


def test_checkpoint_load_refuses_foreign_files(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"agent": {}}, path)
    with pytest.raises(OffrlError, match="format None was written by an incompatible offrl version"):
        checkpoint.load(path)


def test_utd_schedule_runs_the_critic_on_each_minibatch_and_the_policy_once(tmp_path, small_default_dataset):
    """trainer.utd=4 with offline-to-online SAC: 4 critic steps per policy step, and each critic
    minibatch holds offline and online rows in the configured share (Mixture interleaving)."""
    from offrl.training.trainer import utd_update

    agent = make_agent({"name": "sac", "hidden_dims": [16, 16]}, 3, 1)
    seen = []
    critic_update = agent.critic_update
    agent.critic_update = lambda batch: (seen.append(batch.rewards.clone()), critic_update(batch))[1]
    rows = torch.cat([torch.ones(32), -torch.ones(32)])  # offline rows marked +1, online -1
    order = torch.stack([rows[:32], rows[32:]], 1).flatten()  # what Mixture's interleaving yields
    batch = Batch(torch.randn(64, 3), torch.rand(64, 1) * 2 - 1, order, torch.randn(64, 3), torch.zeros(64))
    utd_update(agent, batch, 4)
    assert len(seen) == 4 and all(len(r) == 16 and (r == 1).sum() == 8 for r in seen)
    critic_steps = agent.optimizers["critic"].state_dict()["state"][0]["step"]
    actor_steps = agent.optimizers["actor"].state_dict()["state"][0]["step"]
    assert float(critic_steps) == 4 and float(actor_steps) == 1 and agent.num_updates == 1

    run = tmp_path / "run"
    assert main(["train", "agent=sac", "trainer=offline_to_online", *FAST, "trainer.pretrain_steps=0",
                 "trainer.steps=60", "trainer.utd=3", "trainer.eval_every=60", "trainer.eval_episodes=1",
                 "threads=1", f"hydra.run.dir={run}"]) == 0
    assert main(["train", "agent=td3bc", "trainer.utd=2", *FAST, f"hydra.run.dir={tmp_path / 'no'}"]) == 2


# ---------------------------------------------------------------------- sweeps: Ctrl-C, SIGTERM, resume
SWEEP_JOB = ["agent=sac", *ONLINE, "trainer.steps=800", "trainer.checkpoint_every=100", "trainer.eval_every=800"]


@pytest.fixture(scope="module")
def uninterrupted_sweep_job(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert main(["train", *SWEEP_JOB, f"hydra.run.dir={run}"]) == 0
    return run


def _start_sweep(args: list[str], sweep: Path) -> subprocess.Popen:
    """A sweep in its own process group, with Ctrl-C's default action (a shell's background job ignores it)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "offrl.cli", "train", "-m", *args, f"hydra.sweep.dir={sweep}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(condition, proc: subprocess.Popen) -> None:
    deadline = time.time() + 180
    while not condition() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"


@pytest.mark.parametrize("target", ["parent", "group"])
def test_ctrl_c_to_a_parallel_sweep_checkpoints_every_job_and_the_sweep_resumes(tmp_path, target,
                                                                               uninterrupted_sweep_job):
    """Ctrl-C reaches a local sweep's parent only (kill -INT) or its whole process group (a terminal's Ctrl-C):
    every job in progress saves a checkpoint, jobs not started are skipped, the command names the resume; the resumed
    sweep ends with the uninterrupted results."""
    sweep = tmp_path / "sweep dir"  # a space: the resume hint must still work
    proc = _start_sweep(["hydra/launcher=local", "hydra.launcher.n_jobs=2", *SWEEP_JOB, "seed=3,4,5"], sweep)
    _wait_for(lambda: len(list(sweep.glob("*/checkpoints/last.pt"))) == 2, proc)
    if target == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"continue the sweep with: offrl train resume={shlex.quote(str(sweep))}" in err
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [d.name.split("_")[0] for d in jobs] == ["0", "1"], "the job not started leaves no directory"
    assert not (sweep / ".offrl-sweep").exists()
    for job in jobs:
        assert checkpoint.load(job / "checkpoints" / "last.pt")["phases"]["online"]["step"] < 800
        assert not (job / "results.json").exists()
    assert main(["train", f"resume={sweep}"]) == 0
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert len(jobs) == 3 and all((d / "results.json").is_file() for d in jobs)
    _assert_same_run(next(d for d in jobs if d.name.endswith("seed3")), uninterrupted_sweep_job)
    finished = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and p.name != "multirun.yaml"}
    assert main(["train", f"resume={sweep}"]) == 0  # a finished sweep: every job says so, nothing changes
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and p.name != "multirun.yaml"} == finished


def test_sigterm_to_a_submitit_job_checkpoints_and_the_sweep_resumes_exactly(tmp_path, uninterrupted_sweep_job):
    """The cluster path with submitit's local executor (SLURM's machinery, run here): SIGTERM to the job's process,
    as a scheduler sends before preempting it, checkpoints; resuming the sweep gives the uninterrupted result."""
    sweep = tmp_path / "sweep"
    proc = _start_sweep(["hydra/launcher=submitit_local", *SWEEP_JOB], sweep)
    _wait_for(lambda: list(sweep.glob("*/checkpoints/last.pt")), proc)
    job_pids = [int(p.name.removeprefix("job-")) for p in (sweep / ".offrl-sweep").glob("job-*")]
    assert len(job_pids) == 1 and job_pids[0] != proc.pid
    os.kill(job_pids[0], signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1 and "continue the sweep with" in err, err
    job = next(d for d in sweep.iterdir() if d.name.startswith("0_"))
    assert not (job / "results.json").exists()
    assert main(["train", f"resume={sweep}"]) == 0
    _assert_same_run(job, uninterrupted_sweep_job)
