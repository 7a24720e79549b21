"""Collect results.json files of a sweep into a table of normalized scores (mean +- std over seeds).

    offrl train -m hydra/launcher=local threads=1 agent=bc,td3bc,prdc,a2pr \
        dataset=hopper-medium,hopper-medium-replay seed=0,1,2 trainer.steps=10000 hydra.sweep.dir=<DIR>
    python experiments/aggregate.py <DIR> [<DIR> ...] --out experiments/results/offline_table

Scores are the final evaluation of each run (trainer.eval_episodes episodes), D4RL-normalised with the
dataset's reference returns; runs without reference returns (online runs on an env) report the raw
return. Wall time and updates/s per run are averaged next to the scores. Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np


def collect(dirs: list[Path]) -> dict[tuple[str, str], list[dict]]:
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for root in dirs:
        for path in sorted(root.rglob("results.json")):
            result = json.loads(path.read_text())
            runs[(result["dataset"], result["agent"])].append(result)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--command", default="", help="the sweep command, recorded with the table")
    args = parser.parse_args()
    runs = collect(args.dirs)
    datasets = sorted({d for d, _ in runs})
    known = ("bc", "td3bc", "prdc", "a2pr", "odice", "sac", "pmoe")
    agents = sorted({a for _, a in runs}, key=lambda a: (known.index(a) if a in known else len(known), a))
    rows = []
    for (dataset, agent), results in sorted(runs.items()):
        normalized = all(r["normalized_score"] is not None for r in results)
        scores = np.array([r["normalized_score"] if normalized else r["return_mean"] for r in results])
        rows.append({"dataset": dataset, "agent": agent, "seeds": sorted(r["seed"] for r in results),
                     "steps": sorted({r["steps"] for r in results}),
                     "score": "normalized_score" if normalized else "return", "mean": float(scores.mean()),
                     "std": float(scores.std()), "scores": scores.tolist(),
                     "updates_per_s": float(np.mean([r["updates_per_s"] for r in results])),
                     "wall_s": float(np.mean([r["wall_s"] for r in results])),
                     "eval_episodes": results[0]["eval_episodes"]})
    record = {"date": date.today().isoformat(), "command": args.command,
              "score": "final evaluation: D4RL-normalised score, or the raw return where no reference returns exist",
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    table = {(r["dataset"], r["agent"]): r for r in rows}
    kinds = sorted({r["score"] for r in rows})
    lines = [f"# {' / '.join(kinds)}: final evaluation, mean +- std over seeds ({record['date']})", "",
             f"Command: `{args.command}`" if args.command else "", "",
             "| dataset | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for dataset in datasets:
        cells = []
        for agent in agents:
            r = table.get((dataset, agent))
            cells.append("" if r is None else f"{r['mean']:.1f} +- {r['std']:.1f} (n={len(r['seeds'])})")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines += ["", "Mean wall time per run, s (updates/s):", "", "| dataset | " + " | ".join(agents) + " |",
              "|---|" + "---:|" * len(agents)]
    for dataset in datasets:
        cells = [f"{table[dataset, a]['wall_s']:.0f} ({table[dataset, a]['updates_per_s']:.0f})"
                 if (dataset, a) in table else "" for a in agents]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    steps = sorted({s for r in rows for s in r["steps"]})
    lines += ["", f"Steps per run: {steps}; score = final evaluation "
                  f"({rows[0]['eval_episodes'] if rows else '?'} episodes)."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
