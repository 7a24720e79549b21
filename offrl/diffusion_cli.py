"""``offrl diffusion``: train Policy-Guided Diffusion's trajectory model and sample synthetic data (card C.8).

    offrl diffusion train dataset=<name> [dir=DIR] [preset=cpu|paper] [size=N] [key=value ...]
    offrl diffusion train resume=<dir> [steps=N ...]      continue a run from its last checkpoint
    offrl diffusion sample <model dir> --num N [--out file.hdf5] [--horizon L] [--steps K] [--seed S]
    offrl diffusion dynamics <model dir> --agent-run <run dir> [--coef 0 1 10] [--num N] [--out DIR]
                                                         dynamics error of (guided) samples, with the simulator

``key=value`` sets any field of ``offrl.diffusion.trajectory.TrajectoryModelConfig`` (features, steps, epochs,
batch_size, lr, horizon, stride, val_fraction, sampler_steps, sample_horizon, device, checkpoint_every,
log_every, val_every, ...). preset=paper (default) is the paper's full-size GPU configuration; preset=cpu
reduces the U-Net width, the step count and the sampler steps so that it trains on a CPU (see the config's
docstring). A run directory holds model.pt (EMA weights + normalisation statistics + config, what ``sample``
reads), checkpoint.pt (exact resume), tb/ (TensorBoard: train/loss, validation/loss, train/lr),
config.json and results.json (steps, steps/s, losses).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from offrl import checkpoint
from offrl.errors import ConfigError, OffrlError

TRAINING_KIND = "pgd-trajectory-training"
CHECKPOINT_FILE = "checkpoint.pt"
RUN_KEYS = ("dataset", "size", "dir", "resume", "preset")
VALIDATION_SEED = 12345  # the validation loss uses fixed noise, so its values are comparable across steps


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
            from offrl.diffusion.dynamics import main as dynamics_main

            return dynamics_main(rest)
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    print(f"offrl diffusion: error: unknown command '{command}'; expected train, sample or dynamics",
          file=sys.stderr)
    return 2


# ---------------------------------------------------------------------- train
def parse_overrides(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """``key=value`` words split into the run keys (dataset, size, dir, resume, preset) and config overrides."""
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


def build_config(preset: str, overrides: list[str], base: dict[str, Any] | None = None):
    from omegaconf import OmegaConf

    from offrl.config import typed
    from offrl.diffusion.trajectory import TrajectoryModelConfig

    if base is None:
        if preset not in ("paper", "cpu"):
            raise ConfigError(f"preset={preset} is unknown; expected paper or cpu")
        base = asdict(TrajectoryModelConfig.cpu() if preset == "cpu" else TrajectoryModelConfig())
    try:
        dotlist = OmegaConf.from_dotlist(overrides)
    except Exception as err:  # omegaconf's grammar errors
        raise ConfigError(f"cannot parse overrides {overrides}: {str(err).splitlines()[0]}") from None
    cfg = typed(TrajectoryModelConfig, OmegaConf.merge(OmegaConf.create(base), dotlist), "diffusion")
    cfg.validate()
    return cfg


def train_command(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    run, overrides = parse_overrides(args)
    if "resume" in run:
        run_dir = Path(run["resume"])
        file = run_dir / CHECKPOINT_FILE
        if not file.is_file():
            raise OffrlError(f"{run_dir}: no diffusion checkpoint to resume from (expected {file})")
        state = checkpoint.load(file)
        if state.get("kind") != TRAINING_KIND:
            raise OffrlError(f"{file}: not a trajectory-model training checkpoint")
        for key in ("dataset", "size", "preset"):
            if key in run and str(run[key]) != str(state["run"].get(key)):
                raise OffrlError(f"resume={run_dir}: {key}={run[key]} differs from the run's "
                                 f"{key}={state['run'].get(key)}")
        cfg = build_config("", overrides, base=state["model"]["config"])
        results = train(cfg, state["run"], run_dir, state)
    else:
        if "dataset" not in run:
            raise ConfigError("offrl diffusion train needs dataset=<name> (or resume=<dir>)")
        if "size" in run:
            try:
                run["size"] = int(run["size"])
            except ValueError:
                raise ConfigError(f"size={run['size']} is not a whole number") from None
        run.setdefault("preset", "paper")
        cfg = build_config(run["preset"], overrides)
        label = run["dataset"] if "size" not in run else f"{run['dataset']}-{run['size']}"
        default_dir = Path("runs") / "diffusion" / f"{time.strftime('%Y-%m-%d_%H%M%S')}_{Path(label).stem}"
        run_dir = Path(run.pop("dir", None) or default_dir)
        if (run_dir / CHECKPOINT_FILE).exists():
            raise OffrlError(f"{run_dir} already holds a diffusion run; continue it with resume={run_dir} "
                             "or choose another dir=")
        results = train(cfg, run, run_dir, None)
    if results.get("interrupted"):
        print(f"offrl: interrupted at step {results['steps']}; continue with: offrl diffusion train "
              f"resume={run_dir}", file=sys.stderr)
        return 130
    val = results["val_loss"]
    print(f"offrl: trajectory model of {results['dataset']}: {results['steps']} steps at "
          f"{results['steps_per_s']:.1f} steps/s, train loss {results['train_loss']:.4f}, validation loss "
          f"{'n/a' if val is None else f'{val:.4f}'}; model in {run_dir / 'model.pt'}")
    return 0


def _load_store(run: dict[str, Any], device: torch.device):
    from offrl.analysis import resolve
    from offrl.data.sources import load_dataset
    from offrl.data.store import TransitionStore

    data = load_dataset(resolve(run["dataset"], run.get("size")), log=lambda line: print(line, file=sys.stderr))
    info = data.info
    meta = {"env_id": info.env_id, "env_kwargs": info.env_kwargs, "ref_min_score": info.ref_min_score,
            "ref_max_score": info.ref_max_score}
    return TransitionStore.from_data(data, device), meta


def _validation_loss(model, windows, cfg) -> float | None:
    if len(windows.val_starts) == 0:
        return None
    gen = torch.Generator(device=windows.device).manual_seed(VALIDATION_SEED)
    losses = [model.ema_loss(batch, gen) * len(batch)
              for batch in windows.validation_batches(cfg.batch_size, cfg.val_batches)]
    count = min(len(windows.val_starts), cfg.batch_size * cfg.val_batches)
    return float(torch.stack(losses).sum()) / count


def _catch_interrupt(stop: dict[str, bool]):
    """First Ctrl-C: finish the current step, checkpoint, stop. Second: abort (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        print("offrl: stopping after this step and saving a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    return signal.signal(signal.SIGINT, handler)


def train(cfg, run: dict[str, Any], run_dir: Path, state: dict[str, Any] | None) -> dict[str, Any]:
    """Train (or, with a training checkpoint ``state``, continue) the trajectory model in ``run_dir``."""
    from torch.utils.tensorboard import SummaryWriter

    from offrl.data.windows import TrajectoryNormalizer, TrajectoryWindows
    from offrl.diffusion.trajectory import TrajectoryModel, make_optimizer, model_state, resolve_device, save_model
    from offrl.diffusion.trajectory import train_step as step_fn
    from offrl.progress import progress, write
    from offrl.run import flush_denormals

    flush_denormals()
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    with checkpoint.RunLock(run_dir):
        store, meta = _load_store(run, device)
        label = run["dataset"] if run.get("size") is None else f"{run['dataset']}-{run['size']}"
        label = Path(label).stem if label.endswith((".hdf5", ".h5")) else label
        normalizer = None if state is None else TrajectoryNormalizer.from_state_dict(state["model"]["normalizer"])
        windows = TrajectoryWindows(store, cfg.horizon, cfg.stride, cfg.val_fraction, cfg.seed, cfg.action_eps,
                                    normalizer=normalizer, where=label)
        if state is not None and state["model"]["dataset"] != label:
            raise OffrlError(f"{run_dir}: the run trained on {state['model']['dataset']}, not {label}")
        torch.manual_seed(cfg.seed)
        model = TrajectoryModel(cfg, windows.normalizer, label, meta).to(device)
        total = cfg.total_steps(len(windows))
        opt, schedule = make_optimizer(model, total)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        step, elapsed = 0, 0.0
        if state is not None:
            model.net.load_state_dict(state["model"]["net"])
            model.ema.load_state_dict(state["model"]["ema"])
            opt.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            gen.set_state(state["generator"])
            step, elapsed = state["step"], state["elapsed_s"]
            if state["total_steps"] != total:
                write(f"offrl: note: total steps {state['total_steps']} -> {total}; the lr schedule follows the new "
                      "total from here on")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps({"run": run, "config": asdict(cfg)}, indent=2) + "\n")

        def save() -> None:
            checkpoint.save_atomic({"kind": TRAINING_KIND, "run": run, "model": model_state(model),
                                    "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
                                    "generator": gen.get_state(), "step": step, "total_steps": total,
                                    "elapsed_s": elapsed + time.perf_counter() - started},
                                   run_dir / CHECKPOINT_FILE)
            save_model(model, run_dir)

        writer = SummaryWriter(str(run_dir / "tb"), purge_step=step if state is not None else None)
        write(f"offrl: {len(windows)} training / {len(windows.val_starts)} validation windows of {cfg.horizon} steps, "
              f"{windows.channels} channels; {sum(p.numel() for p in model.net.parameters()):,} parameters on "
              f"{device}; steps {step} -> {total}")
        started = time.perf_counter()
        first = step
        loss = torch.zeros((), device=device)
        train_loss, val_loss, interrupted = None, None, False
        stop = {"requested": False}
        previous_handler = _catch_interrupt(stop)
        try:
            with progress(total, "diffusion", initial=step) as bar:
                while step < total and not stop["requested"]:
                    loss = step_fn(model, opt, schedule, windows.sample(cfg.batch_size, gen), step, gen)
                    step += 1
                    bar.update(1)
                    if step % cfg.log_every == 0 or step == total:
                        train_loss = float(loss)
                        if not np.isfinite(train_loss):
                            raise OffrlError(f"the diffusion loss became {train_loss} at step {step}; lower lr=")
                        writer.add_scalar("train/loss", train_loss, step)
                        writer.add_scalar("train/lr", schedule.get_last_lr()[0], step)
                    if step % cfg.val_every == 0 or step == total:
                        val_loss = _validation_loss(model, windows, cfg)
                        if val_loss is not None:
                            writer.add_scalar("validation/loss", val_loss, step)
                    if step % cfg.checkpoint_every == 0 or step == total or stop["requested"]:
                        save()
            interrupted = stop["requested"]
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            writer.close()
        wall = time.perf_counter() - started
        done = step - first
        results = {
            "dataset": label, "steps": step, "total_steps": total, "steps_this_session": done,
            "steps_per_s": done / wall if wall > 0 and done else 0.0, "wall_s": wall, "total_wall_s": elapsed + wall,
            "train_loss": train_loss if train_loss is not None else float(loss) if done else None,
            "val_loss": val_loss, "train_windows": len(windows), "val_windows": len(windows.val_starts),
            "device": str(device), "parameters": sum(p.numel() for p in model.net.parameters()),
            "interrupted": interrupted, "config": asdict(cfg),
        }
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        return results


# ---------------------------------------------------------------------- sample
def _sample_parser() -> argparse.ArgumentParser:
    from offrl.cli import OneLineParser

    parser = OneLineParser(prog="offrl diffusion sample",
                           description="Sample unguided synthetic trajectories from a trained trajectory model and "
                                       "write their transitions as a D4RL-layout hdf5 file.")
    parser.add_argument("model", help="a run directory of offrl diffusion train (or its model.pt)")
    parser.add_argument("--num", type=int, required=True, help="trajectories to sample")
    parser.add_argument("--out", default=None, help="output file (default: <model dir>/synthetic-<num>.hdf5)")
    parser.add_argument("--horizon", type=int, default=None, help="steps per trajectory (default: sample_horizon)")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the config's)")
    parser.add_argument("--batch", type=int, default=256, help="trajectories per sampler call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    return parser


def synthetic_arrays(batch, horizon: int) -> dict[str, np.ndarray]:
    """Decoded transitions as D4RL arrays: terminals = the decoded done flags; each trajectory's last transition
    that is not terminal is a timeout (the trajectory ends there)."""
    n = len(batch.rewards)
    dones = batch.dones.cpu().numpy() > 0.5
    last = np.zeros(n, bool)
    last[horizon - 2::horizon - 1] = True
    return {"observations": batch.obs.cpu().numpy().astype(np.float32),
            "actions": batch.actions.cpu().numpy().astype(np.float32),
            "rewards": batch.rewards.cpu().numpy().astype(np.float32),
            "next_observations": batch.next_obs.cpu().numpy().astype(np.float32),
            "terminals": dones, "timeouts": last & ~dones}


def sample_command(args: list[str]) -> int:
    from offrl.data.d4rl import write_d4rl_hdf5
    from offrl.diffusion.trajectory import MODEL_FILE, load_model, resolve_device, sample

    try:
        ns = _sample_parser().parse_args(args)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    if ns.num < 1 or ns.batch < 1 or (ns.horizon is not None and ns.horizon < 4) or (ns.steps is not None
                                                                                      and ns.steps < 1):
        raise ConfigError("--num, --batch and --steps must be positive and --horizon at least 4")
    device = resolve_device(ns.device)
    model = load_model(ns.model, device=device)
    model_file = Path(ns.model) / MODEL_FILE if Path(ns.model).is_dir() else Path(ns.model)
    horizon = ns.horizon or model.cfg.sample_horizon
    gen = torch.Generator(device=device).manual_seed(ns.seed)
    started = time.perf_counter()
    windows = sample(model, ns.num, generator=gen, horizon=horizon, num_steps=ns.steps, batch_size=ns.batch)
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
