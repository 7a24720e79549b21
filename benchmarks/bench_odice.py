"""O-DICE vs TD3+BC updates/s in offrl (same data, same process, one after the other).

    python benchmarks/bench_odice.py [--dataset hopper-medium-replay] [--steps 300] [--threads 1]

Times the three O-DICE update modes (orthogonal = O-DICE, true, semi) next to TD3+BC; each runs
``--warmup`` untimed updates first. O-DICE's cost is dominated by its 1024x1024 policy (the official
architecture); the orthogonal projection itself is one extra gradient and a few dot products.
Prints odice_over_td3bc_time=<ratio> last; writes benchmarks/results/odice_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

import torch
from bench_td3bc import bench_offrl

from offrl.generation.recipes import ensure_recipe_dataset

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hopper-medium-replay")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "odice_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = ensure_recipe_dataset(args.dataset)
    results = {"td3bc": bench_offrl(path, args.steps, args.warmup, False, "cpu", "td3bc")}
    for mode in ("orthogonal", "true", "semi"):
        results[f"odice_{mode}"] = bench_offrl(path, args.steps, args.warmup, False, "cpu", "odice", update_mode=mode)
    ratio = results["td3bc"]["updates_per_s"] / results["odice_orthogonal"]["updates_per_s"]
    record = {"command": "python benchmarks/bench_odice.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(),
              "machine": f"{platform.machine()}, {args.threads} torch threads, cpu, torch {torch.__version__}",
              "dataset": args.dataset, "steps": args.steps, "results": results, "odice_over_td3bc_time": ratio}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# O-DICE vs TD3+BC updates/s on {args.dataset} ({record['date']})", "",
             f"Command: `{record['command']}`", "", f"Machine: {record['machine']}", "",
             "| agent | updates/s |", "|---|---:|",
             *(f"| {k} | {v['updates_per_s']:.1f} |" for k, v in results.items()),
             "", f"odice_over_td3bc_time = {ratio:.2f}"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:-1]))
    print(f"odice_over_td3bc_time={ratio:.2f}")


if __name__ == "__main__":
    main()
