"""Relate dataset quality (TQ, SACo from `offrl datasets analyze`) to the normalized scores of BC and
the offline agents on the same datasets (the paper's question: does BC track TQ, and do offline RL
agents need SACo?).

    python experiments/quality_vs_scores.py \
        --analysis experiments/results/dataset_analysis/{hopper,halfcheetah,walker2d}/analysis.json \
        --scores experiments/results/offline_table.json --out experiments/results/quality_vs_scores

Writes <out>.md (a table) and <out>.png (BC score vs TQ, and best offline-RL-minus-BC vs SACo).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analysis", nargs="+", type=Path, required=True)
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    quality = {}
    for path in args.analysis:
        for entry in json.loads(path.read_text())["datasets"]:
            quality[entry["name"]] = entry
    scores: dict[str, dict[str, float]] = {}
    for row in json.loads(args.scores.read_text())["rows"]:
        scores.setdefault(row["dataset"], {})[row["agent"]] = row["mean"]
    agents = sorted({a for s in scores.values() for a in s}, key=["bc", "td3bc", "prdc", "a2pr", "odice"].index)
    lines = ["| dataset | TQ | SACo (reference) | " + " | ".join(agents) + " |",
             "|---|---:|---:|" + "---:|" * len(agents)]
    points = []
    for name in sorted(scores):
        q = quality.get(name)
        if q is None:
            continue
        tq, saco = q["tq"]["value"], q["saco"]["value"]
        cells = " | ".join(f"{scores[name][a]:.1f}" if a in scores[name] else "" for a in agents)
        lines.append(f"| {name} | {tq:.3f} | {saco:.3f} ({q['saco']['reference']}) | {cells} |")
        rl = [v for a, v in scores[name].items() if a != "bc"]
        if "bc" in scores[name] and rl:
            points.append((name, tq, saco, scores[name]["bc"], max(rl) - scores[name]["bc"]))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, tq, saco, bc, gain in points:
        left.scatter(tq, bc)
        left.annotate(name, (tq, bc), fontsize=7)
        right.scatter(saco, gain)
        right.annotate(name, (saco, gain), fontsize=7)
    left.set(xlabel="TQ", ylabel="BC normalized score", title="BC vs trajectory quality")
    right.set(xlabel="SACo (relative to the family's medium-replay)", ylabel="best offline RL - BC",
              title="Offline RL gain vs coverage")
    right.axhline(0, color="gray", lw=0.5)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()
