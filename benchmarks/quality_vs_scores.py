"""Relate dataset quality (TQ, SACo from `offrl datasets analyze`) to the normalized scores of BC and
the offline agents on the same datasets (the paper's question: does BC track TQ, and do offline RL
agents need SACo?).

    cd benchmarks/results && python ../quality_vs_scores.py --report reports/offline_table/report.json \\
        --analysis dataset_analysis/{hopper,halfcheetah,walker2d}{,-medium-replay-2026-12-04}/analysis.json \\
        --out quality_vs_scores

(a family's dated re-analysis, listed after it, gives the TQ of the medium-replay set its runs trained on)

--report is the offline table's ``offrl report`` (python benchmarks/make_tables.py --only offline_table);
the scores are its per-dataset means over seeds. Writes <out>.md (a table) and <out>.png (BC score vs TQ, and
best offline-RL-minus-BC vs SACo); the documentation shows a copy of the figure, docs/figures/quality_vs_scores.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from offrl.tools.report import MARKERS, PALETTE

AGENTS = ["bc", "td3bc", "prdc", "a2pr", "odice"]
QUALITIES = ["random", "medium", "medium-replay", "medium-expert", "expert"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analysis", nargs="+", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True, help="report.json of offrl report")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    quality = {}
    for path in args.analysis:
        for entry in json.loads(path.read_text())["datasets"]:
            quality[entry["name"]] = entry
    scores: dict[str, dict[str, float]] = {}
    for group in json.loads(args.report.read_text())["groups"]:
        if group["n"]:
            scores.setdefault(group["dataset"], {})[group["agent"]] = group["mean"]["point"]
    agents = sorted({a for s in scores.values() for a in s}, key=AGENTS.index)
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
    args.out.with_suffix(".md").write_text(f"Scores: {args.report}\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    families = sorted({name.split("-", 1)[0] for name, *_ in points})
    qualities = [q for q in QUALITIES if any(name.split("-", 1)[1] == q for name, *_ in points)]
    for name, tq, saco, bc, gain in points:  # colour: the family, marker: the quality
        family, quality = name.split("-", 1)
        style = {"color": PALETTE[families.index(family)], "marker": MARKERS[qualities.index(quality)], "s": 50}
        left.scatter(tq, bc, **style)
        right.scatter(saco, gain, **style)
    handles = [Line2D([], [], color=PALETTE[i], marker="o", ls="", label=f) for i, f in enumerate(families)]
    handles += [Line2D([], [], color="0.3", marker=MARKERS[i], ls="", label=q) for i, q in enumerate(qualities)]
    left.set(xlabel="TQ (normalised mean episode return of the data)", ylabel="BC normalized score (0-100)",
             title="BC vs trajectory quality")
    right.set(xlabel="SACo (state-action coverage relative to the family's medium-replay)",
              ylabel="best offline RL agent minus BC (score points)", title="Offline RL gain vs coverage")
    right.axhline(0, color="0.5", lw=0.8, ls="--")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=8)
    fig.savefig(args.out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
