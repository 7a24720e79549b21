"""The GPU speed check (issue 16), one prepared script: single-seed TD3+BC and SAC updates/s eager vs
torch.compile vs torch.compile with CUDA graphs (mode="reduce-overhead"), batch 256, Hopper shapes (17, 6),
data already on the GPU; then K = 1, 8, 32, 128 seeds of TD3+BC in one process (offrl.training.seeds.stack_agents,
compiled), aggregate seed-updates/s; then precision (issue 34): each agent's updates/s in fp32, tf32 (fp32 tensors,
TF32 matmuls) and bf16 (autocast, as ``offrl train precision=bf16`` runs it), eager and compiled with CUDA graphs,
and what ``precision=auto`` would choose on this GPU. Also runs on CPU (--device cpu) for a dry run of the script
itself (tf32 and CUDA graphs skipped there).

    python benchmarks/bench_gpu.py [--device cuda] [--steps 2000] [--agents td3bc sac] [--ks 1 8 32 128]
                                   [--precisions fp32 tf32 bf16] [--precision-modes eager "compile + CUDA graphs"]

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
from offrl.core.precision import Precision
from offrl.core.runtime import bf16_speedup, resolve_precision

RESULTS = Path(__file__).parent / "results"
MODES = {"eager": None, "compile": {"mode": "default"}, "compile + CUDA graphs": {"mode": "reduce-overhead"}}


def synthetic_store(device: str):
    return store(17, 6, rows=100_000, device=device)


def timed(agent, source, steps: int, device: str, seeds: int = 1, precision: Precision | None = None) -> float:
    """Seed-updates/s after a warm-up (compilation, CUDA-graph recording), under ``precision``'s autocast."""
    precision = precision or Precision("fp32", torch.device(device).type)
    with precision.autocast():
        for _ in range(50):
            agent.update(source.sample(256))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            metrics = agent.update(source.sample(256))
        float(next(iter(metrics.values())).sum())  # waits for the device
    return seeds * steps / (time.perf_counter() - start)


def updates_per_s(name: str, mode: dict | None, device: str, steps: int, precision: str = "fp32") -> float:
    """One agent's updates/s in ``precision`` (fp32, tf32, bf16: prepared as offrl train prepares it)."""
    data = synthetic_store(device)
    torch.manual_seed(0)
    agent = make_agent({"name": name}, 17, 6, device)
    chosen = Precision(precision, torch.device(device).type)
    chosen.prepare(agent)  # TF32 on or off (process-wide), bf16's fp32 output layers
    if mode is not None:
        torch._dynamo.reset()  # a fresh compile: past dynamo's recompile limit a method would run eagerly
        agent.enable_compile(**mode)
    try:
        return timed(agent, data, steps, device, precision=chosen)
    finally:
        Precision("fp32", torch.device(device).type).prepare(agent)  # TF32 off again for what follows


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
    parser.add_argument("--precisions", nargs="*", default=["fp32", "tf32", "bf16"], help="none: no precision table")
    parser.add_argument("--precision-modes", nargs="+", default=["eager", "compile + CUDA graphs"], choices=list(MODES))
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
    precision_rows, auto = precision_table(args, modes)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    record = {"command": "python benchmarks/bench_gpu.py " + " ".join(sys.argv[1:]), "date": date.today().isoformat(),
              "machine": f"{gpu}, torch {torch.__version__}", "batch": 256, "rows": rows,
              "td3bc_seeds_in_one_process": {str(k): v for k, v in seeds.items()},
              "precision": precision_rows, "precision_auto": auto}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_speed.json").write_text(json.dumps(record, indent=2))
    lines = [f"# Updates/s on {gpu} ({record['date']})", "", f"`{record['command']}`, torch {torch.__version__}", "",
             "| agent | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    lines += [f"| {r['agent']} | " + " | ".join(f"{r[m]:.0f}" for m in modes) + " |" for r in rows]
    lines += ["", "| TD3+BC seeds in one process (compiled) | aggregate seed-updates/s |", "|---|---:|"]
    lines += [f"| K = {k} | {v:.0f} |" for k, v in seeds.items()]
    if precision_rows:
        columns = [key for key in precision_rows[0] if key != "agent"]
        lines += ["", "| agent (precision) | " + " | ".join(columns) + " |",
                  "|---|" + "---:|" * len(columns)]
        lines += [f"| {r['agent']} | " + " | ".join(f"{r[c]:.0f}" for c in columns) + " |" for r in precision_rows]
    lines += ["", f"precision=auto on this device: {auto['chosen']} (a bf16 matmul {auto['bf16_speedup']:.2f}x as fast "
              "as fp32 at 256 x 256 x 256)"]
    (RESULTS / "gpu_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def precision_table(args, modes: dict) -> tuple[list[dict], dict]:
    """Updates/s of each agent per precision (rows ``agent precision``) and mode; what precision=auto chooses."""
    device = torch.device(args.device)
    wanted = [p for p in args.precisions if not (p == "tf32" and device.type != "cuda")]
    rows = []
    for name in args.agents if wanted else []:
        for precision in wanted:
            row = {"agent": f"{name} ({precision})"}
            for label in args.precision_modes:
                if label in modes:
                    row[f"{label} updates/s"] = updates_per_s(name, modes[label], args.device, args.steps, precision)
                    print(f"{name} {precision} {label}: {row[f'{label} updates/s']:.0f} updates/s", flush=True)
            rows.append(row)
    lines = []
    chosen = resolve_precision("auto", device, lines.append).name
    return rows, {"chosen": chosen, "bf16_speedup": bf16_speedup(device), "line": lines[0]}


if __name__ == "__main__":
    main()
