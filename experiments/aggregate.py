"""Collect results.json files of a sweep into a table of normalized scores (mean +- std over seeds).

    offrl train -m hydra/launcher=local threads=1 agent=bc,td3bc,prdc,a2pr \
        dataset=hopper-medium,hopper-medium-replay seed=0,1,2 trainer.steps=10000 hydra.sweep.dir=<DIR>
    python experiments/aggregate.py <DIR> [<DIR> ...] --out experiments/results/offline_table

Scores are the final evaluation of each run (trainer.eval_episodes episodes), D4RL-normalised with the
dataset's reference returns; runs without reference returns (online runs on an env) report the raw
return. Wall time and updates/s per run are averaged next to the scores. Writes <out>.json and <out>.md,
and with --curves <out>.png: evaluation return against steps, mean and spread over seeds, a panel per dataset.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import yaml


def collect(dirs: list[Path], by: str | None = None, dataset: str | None = None) -> dict[tuple[str, str], list[dict]]:
    """Runs grouped by (dataset, agent); with ``by`` (a dotted config key, read from each run's
    config.yaml) the agent label becomes ``agent[value]``, e.g. odice[semi]."""
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for root in dirs:
        for path in sorted(root.rglob("results.json")):
            result = json.loads(path.read_text())
            if dataset and result["dataset"] != dataset:
                continue
            label = result["agent"]
            if by:
                value = yaml.safe_load((path.parent / "config.yaml").read_text())
                for key in by.split("."):
                    value = value[key]
                label = f"{label}[{value}]"
            runs[(result["dataset"], label)].append(result)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--command", default="", help="the sweep command, recorded with the table")
    parser.add_argument("--by", help="split each agent by this dotted config key, e.g. agent.update_mode")
    parser.add_argument("--dataset", help="only runs on this dataset")
    parser.add_argument("--curves", action="store_true", help="also plot the evaluation curves to <out>.png")
    args = parser.parse_args()
    runs = collect(args.dirs, args.by, args.dataset)
    datasets = sorted({d for d, _ in runs})
    known = ("bc", "td3bc", "prdc", "a2pr", "odice", "sac", "pmoe")

    def order(label: str) -> tuple[int, str]:
        name = label.split("[")[0]
        return (known.index(name) if name in known else len(known), label)

    agents = sorted({a for _, a in runs}, key=order)
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
    if args.curves:
        plot_curves(runs, datasets, agents, args.out.with_suffix(".png"))


def plot_curves(runs: dict[tuple[str, str], list[dict]], datasets: list[str], agents: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from offrl.analysis import PALETTE

    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        online = False
        for k, agent in enumerate(agents):
            results = runs.get((dataset, agent))
            if not results:
                continue
            online = online or results[0].get("env_steps_per_s") is not None
            steps = [e["step"] for e in results[0]["eval_history"]]
            curves = np.array([[e["return_mean"] for e in r["eval_history"]][:len(steps)] for r in results])
            mean, std = curves.mean(0), curves.std(0)
            color = PALETTE[k % len(PALETTE)]
            ax.plot(steps, mean, label=f"{agent} (n={len(results)})", color=color)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=color)
        ax.set(title=dataset, xlabel="environment steps" if online else "gradient steps",
               ylabel="evaluation return (mean +- std over seeds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
