"""What a synthetic table costs next to the agent updates it feeds (policy-guided diffusion, issue 35).

    python benchmarks/bench_synthetic_refresh.py [--dataset idp-mixed --size 5000] [--updates 2000]
        [--paper-windows 2 --paper-steps 4] [--device cpu|cuda]

For each trajectory-model preset (cpu, paper), with the preset's own table (``synthetic_trajectories``
trajectories of ``sample_horizon`` steps, ``sampler_steps`` Heun steps) and the default refresh interval
(``SyntheticConfig.refresh_every``): the seconds of one unguided refresh and one refresh guided by TD3+BC
(``SyntheticSource.refresh``, the code path of ``offrl train synthetic=...``), synthetic transitions/s, TD3+BC
updates/s on batches of 240 synthetic + 16 real rows, and the refresh's share of the time between refreshes.
Sampling cost does not depend on the weights, so the models are untrained. The paper preset's table (8192
trajectories, 256 steps) takes days on a CPU: there it samples ``--paper-windows`` trajectories with
``--paper-steps`` steps and scales the time by network calls to the preset's table, and says so. One torch thread
on a CPU (OMP_NUM_THREADS=1). Writes benchmarks/results/synthetic_refresh.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

from offrl.agents import make_agent
from offrl.agents.td3bc import TD3BCConfig
from offrl.data.batches import Mixture, StoreSampler
from offrl.data.sources import DatasetConfig, load_dataset
from offrl.data.store import ObsNormalizer, TransitionStore
from offrl.data.windows import TrajectoryWindows
from offrl.diffusion.synthetic import SyntheticConfig, SyntheticSource
from offrl.diffusion.trajectory import TrajectoryModel, TrajectoryModelConfig, sample
from offrl.generation.recipes import ensure_recipe_dataset

HERE = Path(__file__).resolve().parent


def _calls(steps: int) -> int:
    return 2 * steps - 1  # Heun: two network calls per step but the last


def bench(preset: str, store: TransitionStore, normalizer: ObsNormalizer, dataset: str, updates: int,
          paper_windows: int, paper_steps: int, device: torch.device) -> dict:
    cfg = TrajectoryModelConfig.cpu(device=str(device)) if preset == "cpu" else TrajectoryModelConfig(
        device=str(device))
    windows = TrajectoryWindows(store, cfg.horizon, cfg.stride, cfg.val_fraction, cfg.seed)
    model = TrajectoryModel(cfg, windows.normalizer, dataset).to(device)
    agent = make_agent(TD3BCConfig(), store.obs.shape[1], store.actions.shape[1], device)
    synthetic_cfg = SyntheticConfig(guidance_coef=1.0)
    row = {"preset": preset, "trajectories": cfg.synthetic_trajectories, "horizon": cfg.sample_horizon,
           "sampler_steps": cfg.sampler_steps, "refresh_every": synthetic_cfg.refresh_every,
           "unet_parameters": sum(p.numel() for p in model.net.parameters())}
    table_transitions = cfg.synthetic_trajectories * (cfg.sample_horizon - 1)
    source = SyntheticSource(synthetic_cfg, model, agent, normalizer, seed=0)
    for kind in ("unguided", "guided"):
        if preset == "cpu":  # the real refresh: the first table is unguided, the second guided
            tick = time.perf_counter()
            source.refresh(0 if kind == "unguided" else synthetic_cfg.refresh_every)
            seconds, scaled = time.perf_counter() - tick, False
        else:
            gen = torch.Generator(device=device).manual_seed(0)
            tick = time.perf_counter()
            sample(model, paper_windows, guidance_coef=1.0 if kind == "guided" else 0.0,
                   agent=agent if kind == "guided" else None, generator=gen, obs_transform=normalizer,
                   num_steps=paper_steps)
            part = time.perf_counter() - tick
            seconds = part * (cfg.synthetic_trajectories / paper_windows) * (_calls(cfg.sampler_steps)
                                                                             / _calls(paper_steps))
            scaled = True
        row[f"{kind}_refresh_s"] = seconds
        row[f"{kind}_transitions_per_s"] = table_transitions / seconds
        row["scaled_from"] = f"{paper_windows} trajectories x {paper_steps} sampler steps" if scaled else None
    if source.table is None:  # the paper preset: a small table stands in (update cost does not depend on its size)
        source.cfg = SyntheticConfig(num_trajectories=4, sampler_steps=2, guidance_coef=0.0)
        source.num_trajectories = 4
        source.refresh(0)
    mixture = Mixture([(source, synthetic_cfg.share), (StoreSampler(store), 1 - synthetic_cfg.share)])
    for _ in range(50):  # warm-up
        agent.update(mixture.sample(256))
    tick = time.perf_counter()
    for _ in range(updates):
        agent.update(mixture.sample(256))
    row["updates_per_s"] = updates / (time.perf_counter() - tick)
    between = synthetic_cfg.refresh_every / row["updates_per_s"]
    row["updates_between_refreshes_s"] = between
    row["guided_refresh_share"] = row["guided_refresh_s"] / (row["guided_refresh_s"] + between)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="idp-mixed")
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--paper-windows", type=int, default=2)
    parser.add_argument("--paper-steps", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(HERE / "results" / "synthetic_refresh"))
    args = parser.parse_args()
    device = torch.device(args.device)
    data = load_dataset(DatasetConfig(name=args.dataset, size=args.size), log=lambda line: None,
                        build=ensure_recipe_dataset)
    normalizer = ObsNormalizer.fit(data.observations)
    store = TransitionStore.from_data(data, device)
    store.normalize_obs(normalizer)
    label = f"{args.dataset}-{args.size}" if args.size else args.dataset
    rows = [bench(preset, store, normalizer.to(device), label, args.updates, args.paper_windows, args.paper_steps,
                  device) for preset in ("cpu", "paper")]
    command = "python benchmarks/bench_synthetic_refresh.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out")
    machine = f"{platform.node()} {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    record = {"command": command, "date": str(date.today()), "machine": machine, "dataset": label, "rows": rows}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Synthetic tables: refresh cost next to update cost ({record['date']})", "",
             f"`{command}` on {machine}. TD3+BC (256x256) updates on 240 synthetic + 16 real rows; refresh every "
             f"{rows[0]['refresh_every']} updates; untrained models (sampling cost does not depend on the weights).",
             "", "| preset | table (trajectories x steps, sampler steps) | U-Net params | unguided refresh (s) | "
             "guided refresh (s) | synthetic transitions/s unguided / guided | TD3+BC updates/s | updates between "
             "refreshes (s) | guided refresh share of the time |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        scaled = "*" if r["scaled_from"] else ""
        lines.append(f"| {r['preset']} | {r['trajectories']} x {r['horizon'] - 1}, {r['sampler_steps']} | "
                     f"{r['unet_parameters']:,} | {r['unguided_refresh_s']:,.1f}{scaled} | "
                     f"{r['guided_refresh_s']:,.1f}{scaled} | {r['unguided_transitions_per_s']:,.1f} / "
                     f"{r['guided_transitions_per_s']:,.1f} | {r['updates_per_s']:.0f} | "
                     f"{r['updates_between_refreshes_s']:.0f} | {100 * r['guided_refresh_share']:.0f}% |")
    scaled = [r for r in rows if r["scaled_from"]]
    if scaled:
        lines += ["", "\\* " + "; ".join(f"{r['preset']}: timed on {r['scaled_from']} and scaled by network calls "
                                         "to the preset's table" for r in scaled) + "."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
