"""``offrl diffusion``: train PGD's trajectory model and sample synthetic data (docs/algorithms/pgd.md).

    offrl diffusion train dataset=<name> [dir=DIR] [preset=cpu|paper] [size=N] [threads=N] [key=value ...]
    offrl diffusion train resume=<dir> [steps=N ...]      continue a run from its last checkpoint
    offrl diffusion sample <model dir> --num N [--out file.hdf5] [--horizon L] [--steps K] [--seed S]
    offrl diffusion dynamics <model dir> --agent-run <run dir> [--coef 0 1 10] [--num N] [--out DIR]
                                                         dynamics error of (guided) samples, with the simulator

``key=value`` sets any field of ``offrl.diffusion.trajectory.TrajectoryModelConfig`` (features, steps, epochs,
batch_size, lr, horizon, stride, val_fraction, sampler_steps, sample_horizon, device, checkpoint_every,
log_every, val_every, ...). preset=paper (default) is the paper's full-size GPU configuration; preset=cpu
reduces the U-Net width, the step count and the sampler steps so that it trains on a CPU (see the config's
docstring). threads=N sets torch's CPU threads (default: the cores free at start, as offrl train).

Training runs on offrl's one trainer (offrl.training.diffusion): the same progress, Ctrl-C handling (finish the
step, checkpoint, print the resume command), exact resume and TensorBoard as offrl train. A run directory holds
model.pt (EMA weights + normalisation statistics + config, what ``sample`` and synthetic.model= read; rewritten
at every checkpoint), checkpoints/last.pt and best.pt (lowest validation loss), tb/ (train/loss, train/lr,
eval/val_loss), config.yaml and results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from offrl.cli.parser import OneLineParser, positive_int, report_stop
from offrl.core.checkpoint import write_text
from offrl.core.config import typed
from offrl.core.errors import ConfigError, Interrupted, OffrlError, TrainingDiverged
from offrl.core.runtime import choose_threads, resolve_device
from offrl.data.d4rl import d4rl_flags, write_d4rl_hdf5
from offrl.data.sources import resolve_dataset
from offrl.diffusion.trajectory import MODEL_FILE, TrajectoryModelConfig, load_model, sample
from offrl.generation.recipes import ensure_recipe_dataset
from offrl.tools import dynamics
from offrl.tools.dynamics import dynamics_error
from offrl.tools.evaluation import load_policy
from offrl.training.diffusion import DiffusionRun, dataset_label, saved_run, train_trajectory_model

RUN_KEYS = ("dataset", "size", "dir", "resume", "preset", "threads")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "train":
            return train_command(rest)
        if command == "sample":
            return sample_command(rest)
        if command == "dynamics":
            return dynamics_command(rest)
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    print(f"offrl diffusion: error: unknown command '{command}'; expected train, sample or dynamics",
          file=sys.stderr)
    return 2


# ---------------------------------------------------------------------- train
def parse_overrides(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """``key=value`` words split into the run keys (dataset, size, dir, resume, preset, threads) and the model's."""
    run: dict[str, str] = {}
    rest: list[str] = []
    for word in args:
        if "=" not in word:
            raise ConfigError(f"'{word}' is not key=value (offrl diffusion train dataset=<name> [key=value ...])")
        key, value = word.split("=", 1)
        if key in RUN_KEYS:
            run[key] = value
        else:
            rest.append(word)
    return run, rest


def build_config(preset: str, overrides: list[str], base: dict[str, Any] | None = None) -> TrajectoryModelConfig:
    if base is None:
        if preset not in ("paper", "cpu"):
            raise ConfigError(f"preset={preset} is unknown; expected paper or cpu")
        base = asdict(TrajectoryModelConfig.cpu() if preset == "cpu" else TrajectoryModelConfig())
    try:
        dotlist = OmegaConf.from_dotlist(overrides)
    except Exception as err:  # omegaconf's grammar errors
        raise ConfigError(f"cannot parse overrides {overrides}: {str(err).splitlines()[0]}") from None
    return typed(TrajectoryModelConfig, OmegaConf.merge(OmegaConf.create(base), dotlist), "")


def train_command(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    words, overrides = parse_overrides(args)
    values = {key: words[key] for key in ("dataset", "size", "preset", "threads") if key in words}
    if "resume" in words:
        run_dir = Path(words["resume"])
        saved, model = saved_run(run_dir)
        for key, value in values.items():
            if key != "threads" and str(value) != str(getattr(saved, key)):
                raise OffrlError(f"resume={run_dir}: {key}={value} differs from the run's {key}={getattr(saved, key)}")
        run = typed(DiffusionRun, {**asdict(saved), "threads": values.get("threads", saved.threads)}, "")
        cfg = build_config("", overrides, base=model)
    else:
        if "dataset" not in values:
            raise ConfigError("offrl diffusion train needs dataset=<name> (or resume=<dir>)")
        run = typed(DiffusionRun, values, "")
        cfg = build_config(run.preset, overrides)
        default_dir = Path("runs") / "diffusion" / f"{time.strftime('%Y-%m-%d_%H%M%S')}_{dataset_label(run)}"
        run_dir = Path(words.get("dir") or default_dir)
    try:
        results = train_trajectory_model(run, cfg, run_dir, resolve_dataset(run.dataset, run.size),
                                         resume="resume" in words, build=ensure_recipe_dataset)
    except (TrainingDiverged, Interrupted) as stop:
        return report_stop(stop, "offrl diffusion train")
    val = results["val_loss"]
    print(f"offrl: trajectory model of {results['dataset']}: {results['steps']} steps at "
          f"{results['updates_per_s']:.1f} steps/s, train loss {results['train_loss']:.4f}, validation loss "
          f"{'n/a' if val is None else f'{val:.4f}'}; model in {run_dir / MODEL_FILE}")
    return 0


# ---------------------------------------------------------------------- sample
def _sample_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="offrl diffusion sample",
                           description="Sample unguided synthetic trajectories from a trained trajectory model and "
                                       "write their transitions as a D4RL-layout hdf5 file.")
    parser.add_argument("model", help="a run directory of offrl diffusion train (or its model.pt)")
    parser.add_argument("--num", type=positive_int, required=True, help="trajectories to sample")
    parser.add_argument("--out", default=None, help="output file (default: <model dir>/synthetic-<num>.hdf5)")
    parser.add_argument("--horizon", type=positive_int, default=None,
                        help="steps per trajectory (default: sample_horizon)")
    parser.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: the config's)")
    parser.add_argument("--batch", type=positive_int, default=256, help="trajectories per sampler call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: the cores free at start, as offrl train)")
    return parser


def synthetic_arrays(batch, horizon: int) -> dict[str, np.ndarray]:
    """Decoded transitions as D4RL arrays, one episode per trajectory: the decoded done flags are terminals at a
    trajectory's last transition (else it ends in a timeout) and successes inside it (TD targets stop there)."""
    n = len(batch.rewards)
    dones = batch.dones.cpu().numpy() > 0.5
    last = np.zeros(n, bool)
    last[horizon - 2::horizon - 1] = True
    return {"observations": batch.obs.cpu().numpy().astype(np.float32),
            "actions": batch.actions.cpu().numpy().astype(np.float32),
            "rewards": batch.rewards.cpu().numpy().astype(np.float32),
            "next_observations": batch.next_obs.cpu().numpy().astype(np.float32), **d4rl_flags(dones, last)}


def sample_command(args: list[str]) -> int:
    try:
        ns = _sample_parser().parse_args(args)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    device = resolve_device(ns.device)
    torch.set_num_threads(choose_threads(ns.threads))
    model = load_model(ns.model, device=device)
    model_file = Path(ns.model) / MODEL_FILE if Path(ns.model).is_dir() else Path(ns.model)
    horizon = ns.horizon or model.cfg.sample_horizon
    if horizon < model.cfg.min_horizon():
        raise ConfigError(f"--horizon {horizon}: expected at least {model.cfg.min_horizon()}, the shortest trajectory "
                          f"the model's {model.cfg.num_levels}-level U-Net samples")
    gen = torch.Generator(device=device).manual_seed(ns.seed)
    started = time.perf_counter()
    windows = sample(model, ns.num, generator=gen, horizon=horizon, num_steps=ns.steps, batch_size=ns.batch,
                     desc="sample")
    batch = model.decode(windows)
    wall = time.perf_counter() - started
    out = Path(ns.out) if ns.out else model_file.parent / f"synthetic-{ns.num}.hdf5"
    metadata = {key: value for key, value in model.info.items() if value not in (None, {})}
    metadata.update({"synthetic_model": str(model_file.resolve()), "synthetic_dataset": model.dataset,
                     "synthetic_guidance": "none", "synthetic_horizon": horizon,
                     "synthetic_sampler_steps": ns.steps or model.cfg.sampler_steps, "synthetic_seed": ns.seed})
    write_d4rl_hdf5(out, synthetic_arrays(batch, horizon), metadata)
    n = len(batch.rewards)
    print(f"offrl: {ns.num} trajectories ({n} transitions, {int(batch.dones.sum())} terminal) from {model_file} in "
          f"{wall:.1f} s ({n / wall:.0f} transitions/s) -> {out}")
    return 0


# ---------------------------------------------------------------------- dynamics
def dynamics_command(argv: list[str]) -> int:
    parser = OneLineParser(prog="offrl diffusion dynamics", description=dynamics.__doc__.splitlines()[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model directory written by offrl diffusion train")
    parser.add_argument("--agent-run", required=True, help="a run directory whose agent guides the sampling")
    parser.add_argument("--coef", type=float, nargs="+", default=[0.0, 1.0, 10.0], help="guidance coefficients")
    parser.add_argument("--num", type=positive_int, default=64, help="trajectories per coefficient")
    parser.add_argument("--horizon", type=positive_int, default=None)
    parser.add_argument("--steps", type=positive_int, default=None, help="sampler steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: the cores free at start, as offrl train)")
    parser.add_argument("--env", default=None, help="env to replay in (default: the model's dataset's env)")
    parser.add_argument("--out", type=Path, default=None, help="write dynamics.json and dynamics.md here")
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    try:
        bad = [c for c in ns.coef if not np.isfinite(c) or c < 0]
        if bad:
            raise OffrlError(f"--coef {bad}: guidance coefficients must be finite numbers >= 0")
        torch.set_num_threads(choose_threads(ns.threads))
        policy = load_policy(ns.agent_run)
        model = load_model(ns.model, obs_dim=policy.agent.obs_dim, act_dim=policy.agent.act_dim)
        env_id = ns.env or (model.info or {}).get("env_id") or policy.run["env_id"]
        rows = []
        for coef in ns.coef:
            generator = torch.Generator().manual_seed(ns.seed)
            windows = sample(model, ns.num, guidance_coef=coef, agent=policy.agent if coef else None,
                             generator=generator, horizon=ns.horizon, obs_transform=policy.normalizer,
                             num_steps=ns.steps)
            batch = model.decode(windows.detach())
            with torch.no_grad():
                likelihood = policy.agent.log_prob(policy.normalizer(batch.obs), batch.actions).mean().item()
            error = dynamics_error(env_id, batch.obs.numpy(), batch.actions.numpy(), batch.rewards.numpy(),
                                   batch.next_obs.numpy())
            rows.append({"guidance_coef": coef, "agent_log_prob": likelihood, **error})
            print(f"coef {coef:g}: agent log-likelihood {likelihood:.3f}, next-obs MSE {error['next_obs_mse']:.4g} "
                  f"(relative {error['next_obs_mse_relative']:.3g}), reward error {error['reward_abs_error']:.4g}")
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    if ns.out is not None:
        record: dict[str, Any] = {"command": "offrl diffusion dynamics " + " ".join(argv), "env_id": env_id,
                                  "model": str(ns.model), "agent_run": str(ns.agent_run), "rows": rows}
        write_text(ns.out / "dynamics.json", json.dumps(record, indent=2), "dynamics record")
        lines = [f"# Dynamics error vs guidance ({env_id})", "", f"`{record['command']}`", "",
                 "| guidance coef | agent log-likelihood | next-obs MSE | relative MSE | reward abs error |",
                 "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['guidance_coef']:g} | {r['agent_log_prob']:.3f} | {r['next_obs_mse']:.4g} | "
                  f"{r['next_obs_mse_relative']:.3g} | {r['reward_abs_error']:.4g} |" for r in rows]
        write_text(ns.out / "dynamics.md", "\n".join(lines) + "\n", "dynamics table")
    return 0
