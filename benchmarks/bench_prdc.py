"""PRDC vs TD3+BC update cost in offrl (same data, one run), and offrl's PRDC vs d3rlpy's.

    python benchmarks/bench_prdc.py [--dataset hopper-medium] [--steps 1000] [--d3rlpy-python PY]

The PRDC update includes the exact nearest-neighbour search (KD-tree on CPU) on its actor steps.
Prints prdc_over_td3bc_time=<ratio> (and speedup_vs_d3rlpy=<ratio> with d3rlpy) last; writes
benchmarks/results/prdc_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

import torch
from bench_td3bc import bench_d3rlpy, bench_offrl

from offrl.generation.recipes import ensure_recipe_dataset

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hopper-medium")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cuda: the neighbour search runs on the GPU (brute force)")
    parser.add_argument("--d3rlpy-python", default=None)
    parser.add_argument("--out", default=str(HERE / "results" / "prdc_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = ensure_recipe_dataset(args.dataset)
    results = {"offrl_td3bc": bench_offrl(path, args.steps, args.warmup, False, args.device, "td3bc"),
               "offrl_prdc": bench_offrl(path, args.steps, args.warmup, False, args.device, "prdc")}
    if args.d3rlpy_python:
        results["d3rlpy_prdc"] = bench_d3rlpy(args.d3rlpy_python, path, args.steps, args.warmup, args.threads, "prdc")
    ratios = {"prdc_over_td3bc_time": results["offrl_td3bc"]["updates_per_s"] / results["offrl_prdc"]["updates_per_s"]}
    if "d3rlpy_prdc" in results:
        ratios["speedup_vs_d3rlpy"] = results["offrl_prdc"]["updates_per_s"] / results["d3rlpy_prdc"]["updates_per_s"]
    record = {"command": "python benchmarks/bench_prdc.py " + " ".join(sys.argv[1:]), "date": date.today().isoformat(),
              "machine": f"{platform.machine()}, {args.threads} torch threads, {args.device}, "
                         f"torch {torch.__version__}",
              "dataset": args.dataset, "steps": args.steps, "results": results, "ratios": ratios}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# PRDC updates/s on {args.dataset} ({record['date']})", "", f"Command: `{record['command']}`", "",
             f"Machine: {record['machine']}", "", "| implementation | updates/s |", "|---|---:|",
             *(f"| {k} | {v['updates_per_s']:.1f} |" for k, v in results.items()), ""]
    out.with_suffix(".md").write_text("\n".join(lines + [f"{k} = {v:.2f}" for k, v in ratios.items()]) + "\n")
    print("\n".join(lines))
    for key, value in ratios.items():
        print(f"{key}={value:.2f}")


if __name__ == "__main__":
    main()
