"""Policy-guided diffusion's trajectory model: training steps/s and synthetic transitions/s, the presets side by side.

    python benchmarks/bench_trajectory.py [--dataset idp-mixed --size 5000] [--preset cpu paper]
        [--steps 200] [--windows 64] [--sampler-steps N] [--device cpu|cuda] [--guided]

Training: ``--warmup`` then ``--steps`` timed optimiser steps at the preset's batch (32 windows of 32 steps;
window sampling, EDM loss, Adam and the EMA included). Sampling: ``--windows`` trajectories of the preset's
``sample_horizon`` with its ``sampler_steps`` Heun steps (2 network calls per step but the last), decoded to
transitions; ``--sampler-steps N`` times N steps instead (the paper preset's 256 on a CPU take minutes per
trajectory) and reports the rate scaled to the preset's steps by network calls beside it. ``--guided`` adds
TD3+BC (256x256, untrained) action guidance. The CPU numbers come from one thread (OMP_NUM_THREADS=1).
Writes benchmarks/results/trajectory_speed.{json,md}: one row per preset, measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

from offrl.agents import make_agent
from offrl.data.sources import DatasetConfig, load_dataset
from offrl.data.store import ObsNormalizer, TransitionStore
from offrl.data.windows import TrajectoryWindows
from offrl.diffusion.trajectory import TrajectoryModel, TrajectoryModelConfig, make_optimizer, sample, train_step

HERE = Path(__file__).resolve().parent


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(dataset: str, size: int | None, preset: str, steps: int, warmup: int, windows_n: int, device: str,
          guided: bool, sampler_steps: int | None) -> dict:
    dev = torch.device(device)
    data = load_dataset(DatasetConfig(name=dataset, size=size), log=lambda line: None)
    store = TransitionStore.from_data(data, dev)
    cfg = TrajectoryModelConfig.cpu(device=device) if preset == "cpu" else TrajectoryModelConfig(device=device)
    steps_timed = sampler_steps or cfg.sampler_steps
    windows = TrajectoryWindows(store, cfg.horizon, cfg.stride, cfg.val_fraction, cfg.seed)
    model = TrajectoryModel(cfg, windows.normalizer, dataset).to(dev)
    opt, schedule = make_optimizer(model, warmup + steps)
    gen = torch.Generator(device=dev).manual_seed(0)
    for step in range(warmup):
        train_step(model, opt, schedule, windows.sample(cfg.batch_size, gen), step, gen)
    _sync(dev)
    tick = time.perf_counter()
    for step in range(warmup, warmup + steps):
        loss = train_step(model, opt, schedule, windows.sample(cfg.batch_size, gen), step, gen)
    _sync(dev)
    train_s = time.perf_counter() - tick
    assert torch.isfinite(loss)

    sample(model, 2, generator=gen, horizon=cfg.sample_horizon, num_steps=2)  # warm-up
    rates = {}
    agent = make_agent({"name": "td3bc"}, data.obs_dim, data.act_dim, device) if guided else None
    obs_norm = ObsNormalizer.fit(data.observations).to(dev) if guided else None
    for name, coef in [("unguided", 0.0)] + ([("guided", 1.0)] if guided else []):
        _sync(dev)
        tick = time.perf_counter()
        batch = model.decode(sample(model, windows_n, generator=gen, agent=agent, guidance_coef=coef,
                                    obs_transform=obs_norm, num_steps=steps_timed))
        _sync(dev)
        rates[name] = len(batch.rewards) / (time.perf_counter() - tick)
    transitions = len(batch.rewards)
    calls = lambda n: 2 * n - 1  # noqa: E731  (Heun: two network calls per step but the last)
    at_preset = calls(steps_timed) / calls(cfg.sampler_steps)  # rate at the preset's steps, by network calls
    return {
        "dataset": dataset if size is None else f"{dataset}-{size}", "preset": preset, "device": device,
        "parameters": sum(p.numel() for p in model.net.parameters()), "features": cfg.features,
        "batch_size": cfg.batch_size, "horizon": cfg.horizon, "train_steps": steps,
        "train_steps_per_s": steps / train_s, "train_s": train_s,
        "sample_windows": windows_n, "sample_horizon": cfg.sample_horizon, "sampler_steps": cfg.sampler_steps,
        "sampler_steps_timed": steps_timed, "synthetic_transitions": transitions,
        "synthetic_transitions_per_s": rates["unguided"] * at_preset,
        "guided_transitions_per_s": rates["guided"] * at_preset if "guided" in rates else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="idp-mixed")
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--preset", nargs="+", default=["cpu"], choices=["cpu", "paper"])
    parser.add_argument("--steps", type=int, default=200, help="timed training steps (per preset)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--sampler-steps", type=int, default=None, help="time N sampler steps (default: the preset's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--guided", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results" / "trajectory_speed"))
    ns = parser.parse_args()
    runs = [bench(ns.dataset, ns.size, preset, ns.steps, ns.warmup, ns.windows, ns.device, ns.guided,
                  ns.sampler_steps) for preset in ns.preset]
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} torch thread(s)"
                   + (f", {torch.cuda.get_device_name()}" if ns.device.startswith("cuda") else ""),
        "date": date.today().isoformat(), "runs": runs,
    }
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Trajectory diffusion model speed (policy-guided diffusion)", "",
        f"`{result['command']}` on {result['machine']}, {result['date']}.", "",
        "| preset | device | U-Net params | train steps/s (batch 32 x 32 steps) | synthetic transitions/s "
        "unguided | guided (TD3+BC) | sampler steps, horizon | sampler steps timed |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for run in runs:
        guided = run["guided_transitions_per_s"]
        lines.append(
            f"| {run['preset']} (features {run['features']}) | {run['device']} | {run['parameters']:,} | "
            f"{run['train_steps_per_s']:.3g} | {run['synthetic_transitions_per_s']:.3g} | "
            f"{'-' if guided is None else f'{guided:.3g}'} | {run['sampler_steps']}, {run['sample_horizon']} | "
            f"{run['sampler_steps_timed']} |")
    lines += ["", f"Dataset {runs[0]['dataset']}; {ns.steps} timed training steps and {ns.windows} sampled "
              "trajectories per preset. Where fewer sampler steps were timed than the preset uses, the rates are "
              "scaled to the preset's steps by the number of network calls (2 per Heun step but the last)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
