"""PRDC normalized scores: offrl vs d3rlpy 2.8 at the same budget on the same generated dataset.

    python benchmarks/prdc_vs_d3rlpy_scores.py --d3rlpy-python <venv>/bin/python \\
        --offrl-from benchmarks/runs/offline_table [--dataset hopper-medium-replay] [--steps 10000] [--seeds 0 1 2]

d3rlpy's PRDC (alpha 2.5, beta 2.0, batch 256, standardised observations; its defaults match card C.4)
trains for --steps updates in its own venv, then plays 10 episodes seeded like offrl's evaluation
(seed + 100 + i). offrl's runs are read from a sweep with the same dataset, steps and seeds (the
offline table). Writes benchmarks/results/prdc_vs_d3rlpy_scores.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
from bench_td3bc import HERE, bench_d3rlpy

from offrl.generation.generate import FAMILIES, split_name
from offrl.generation.recipes import ensure_recipe_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d3rlpy-python", required=True)
    parser.add_argument("--offrl-from", type=Path, required=True)
    parser.add_argument("--dataset", default="hopper-medium-replay")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(HERE / "results" / "prdc_vs_d3rlpy_scores"))
    args = parser.parse_args()
    path = ensure_recipe_dataset(args.dataset)
    env_id = FAMILIES[split_name(args.dataset)[0]]
    offrl = {}
    for result_path in args.offrl_from.rglob("results.json"):
        result = json.loads(result_path.read_text())
        if (result["agent"], result["dataset"], result["steps"]) == ("prdc", args.dataset, args.steps):
            offrl[result["seed"]] = result
    missing = sorted(set(args.seeds) - set(offrl))
    if missing:
        raise SystemExit(f"{args.offrl_from}: no offrl PRDC run on {args.dataset} with {args.steps} steps, "
                         f"seeds {missing}")
    rows = [{"impl": "offrl", "seed": s, "normalized_score": offrl[s]["normalized_score"],
             "updates_per_s": offrl[s]["updates_per_s"]} for s in args.seeds]
    for seed in args.seeds:
        out = bench_d3rlpy(args.d3rlpy_python, path, args.steps - 100, 100, 1, "prdc", env_id, seed, 10)
        rows.append({"impl": "d3rlpy", "seed": seed, "normalized_score": out["normalized_score"],
                     "updates_per_s": out["updates_per_s"], "version": out["version"]})
    summary = {}
    for impl in ("offrl", "d3rlpy"):
        scores = np.array([r["normalized_score"] for r in rows if r["impl"] == impl])
        summary[impl] = {"mean": float(scores.mean()), "std": float(scores.std()),
                         "updates_per_s": float(np.mean([r["updates_per_s"] for r in rows if r["impl"] == impl]))}
    record = {"command": "python benchmarks/prdc_vs_d3rlpy_scores.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(), "machine": f"{platform.machine()}, 1 torch thread per run",
              "dataset": args.dataset, "steps": args.steps, "rows": rows, "summary": summary}
    out_path = Path(args.out)
    out_path.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# PRDC on {args.dataset}, {args.steps} updates, seeds {args.seeds} ({record['date']})", "",
             f"Command: `{record['command']}`", "", "| implementation | normalized score | updates/s (1 thread) |",
             "|---|---:|---:|", *(f"| {k} | {v['mean']:.1f} +- {v['std']:.1f} | {v['updates_per_s']:.1f} |"
                                   for k, v in summary.items())]
    out_path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
