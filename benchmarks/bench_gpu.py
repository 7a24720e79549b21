"""The GPU speed check (issue 16), one prepared script: single-seed TD3+BC and SAC updates/s eager vs
torch.compile vs torch.compile with CUDA graphs (mode="reduce-overhead"), batch 256, Hopper shapes (17, 6),
data already on the GPU; then K = 1, 8, 32, 128 seeds of TD3+BC in one process (offrl.training.seeds.stack_agents,
compiled), aggregate seed-updates/s. Also runs on CPU (--device cpu) for a dry run of the script itself.

    python benchmarks/bench_gpu.py [--device cuda] [--steps 2000] [--agents td3bc sac] [--ks 1 8 32 128]

Writes benchmarks/results/gpu_speed.{json,md}. Anchors (not measured here): LeanRL reports SAC 127 -> 725
env steps/s with compile + CUDA graphs on an H100; JAX-CORL runs 1M TD3+BC updates in about 9 minutes on a
GTX 1080 Ti (~1850 updates/s). The nine-dataset TD3+BC table (5 seeds x 1M updates = 45M seed-updates) fits
in 15 GPU minutes at 50k aggregate seed-updates/s.
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
from bench_roofline import store

from offrl.agents import make_agent

RESULTS = Path(__file__).parent / "results"
MODES = {"eager": None, "compile": {"mode": "default"}, "compile + CUDA graphs": {"mode": "reduce-overhead"}}


def synthetic_store(device: str):
    return store(17, 6, rows=100_000, device=device)


def timed(agent, source, steps: int, device: str, seeds: int = 1) -> float:
    """Seed-updates/s after a warm-up (compilation, CUDA-graph recording)."""
    for _ in range(50):
        agent.update(source.sample(256))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        metrics = agent.update(source.sample(256))
    float(next(iter(metrics.values())).sum())  # waits for the device
    return seeds * steps / (time.perf_counter() - start)


def updates_per_s(name: str, mode: dict | None, device: str, steps: int) -> float:
    data = synthetic_store(device)
    torch.manual_seed(0)
    agent = make_agent({"name": name}, 17, 6, device)
    if mode is not None:
        agent.enable_compile(**mode)
    return timed(agent, data, steps, device)


def seeds_per_s(k: int, device: str, steps: int) -> float:
    from offrl.training.seeds import SeedBatches, stack_agents

    data = synthetic_store(device)
    agents = []
    for seed in range(k):
        torch.manual_seed(seed)
        agents.append(make_agent({"name": "td3bc"}, 17, 6, device))
    agent = stack_agents(agents)
    agent.enable_compile()
    return timed(agent, SeedBatches(data, list(range(k))), steps, device, seeds=k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--agents", nargs="+", default=["td3bc", "sac"])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 8, 32, 128], help="TD3+BC seeds in one process")
    args = parser.parse_args()
    modes = MODES if args.device.startswith("cuda") else {k: v for k, v in MODES.items() if "CUDA" not in k}
    rows = []
    for name in args.agents:
        row = {"agent": name}
        for label, mode in modes.items():
            row[label] = updates_per_s(name, mode, args.device, args.steps)
            print(f"{name} {label}: {row[label]:.0f} updates/s", flush=True)
        rows.append(row)
    seeds = {}
    for k in args.ks:
        seeds[k] = seeds_per_s(k, args.device, max(args.steps // 4, 20))
        print(f"td3bc K={k} seeds in one process: {seeds[k]:.0f} seed-updates/s", flush=True)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    record = {"command": "python benchmarks/bench_gpu.py " + " ".join(sys.argv[1:]), "date": date.today().isoformat(),
              "machine": f"{gpu}, torch {torch.__version__}", "batch": 256, "rows": rows,
              "td3bc_seeds_in_one_process": {str(k): v for k, v in seeds.items()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_speed.json").write_text(json.dumps(record, indent=2))
    lines = [f"# Updates/s on {gpu} ({record['date']})", "", f"`{record['command']}`, torch {torch.__version__}", "",
             "| agent | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    lines += [f"| {r['agent']} | " + " | ".join(f"{r[m]:.0f}" for m in modes) + " |" for r in rows]
    lines += ["", "| TD3+BC seeds in one process (compiled) | aggregate seed-updates/s |", "|---|---:|"]
    lines += [f"| K = {k} | {v:.0f} |" for k, v in seeds.items()]
    (RESULTS / "gpu_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
