"""Writing the report: report.json (every number), report.md (its Markdown tables and text) and the figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offrl.core.checkpoint import write_text
from offrl.core.errors import OffrlError
from offrl.tools.report.build import METRICS
from offrl.tools.report.figures import draw_figures, has_curves
from offrl.tools.report.runs import agent_key
from offrl.tools.report.stats import AGGREGATES


def write_report(report: dict[str, Any], out: Path, command: str = "") -> dict[str, Path]:
    """report.json, report.md and the figures into ``out``; returns the files written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OffrlError(f"--out {out}: cannot create the directory ({err.strerror or err})") from None
    figures = draw_figures(report, out)
    report["figures"] = {name: path.name for name, path in figures.items()}
    report["command"] = command
    files = {"report.json": out / "report.json", "report.md": out / "report.md"}
    write_text(files["report.json"], json.dumps(report, indent=2), "report")
    write_text(files["report.md"], markdown(report), "report")
    return {**files, **{f"{k}.png": v for k, v in figures.items()}}


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _ci(entry: dict[str, float], digits: int) -> str:
    return f"{entry['point']:.{digits}f} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


def _seed(seed: int | None) -> str:
    return "?" if seed is None else str(seed)


def score_cell(row: dict[str, Any], digits: int) -> str:
    """'mean +- std (n=N)', with runs in progress not counted as '+K in progress'."""
    extra = sum(not p["counted"] for p in row["in_progress"])
    tail = f", +{extra} in progress" if extra else ""
    if not row["n"]:
        return f"(n=0{tail})"
    return f"{row['mean']['point']:.{digits}f} +- {row['std']:.{digits}f} (n={row['n']}{tail})"


def markdown(report: dict[str, Any]) -> str:
    digits = METRICS[report["metric"]]["digits"]
    agents, datasets = report["agents"], report["datasets"]
    rows = {(g["agent"], g["dataset"]): g for g in report["groups"]}
    finished = sum(r["status"] == "finished" for r in report["runs"])
    running = len(report["runs"]) - finished
    pct = int(round(100 * report["confidence"]))
    lines = ["# offrl report", ""]
    if report.get("command"):
        lines += [f"Command: `{report['command']}`", ""]
    lines += [f"Created {report['created']} with offrl {report['versions']['offrl']}, rliable "
              f"{report['versions']['rliable']}. {len(report['runs'])} run(s) ({finished} finished, {running} in "
              f"progress) of {len(agents)} agent(s) on {len(datasets)} dataset(s).", "",
              f"**Metric: {report['metric_label']}** (`{report['metric']}`): {report['metric_rule']}; each run "
              f"scores its final evaluation (for a run in progress, its latest). Intervals: {pct}% stratified "
              f"bootstrap (rliable, percentile method, {report['reps']} replications, seed "
              f"{report['bootstrap_seed']}).", ""]
    if report.get("by"):
        lines += [f"Agents are split by `{report['by']}`: a label `agent[v]` is the agent's runs with that value "
                  "(`?` where a run's config lacks the key).", ""]
    notes = report["notes"]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]

    lines += ["## Scores", "", f"{report['metric_label'].capitalize()}, mean +- std over seeds (std with ddof=0), "
              "n = seeds counted.", "",
              "| dataset | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for d in datasets:
        lines.append(f"| {d} | " + " | ".join(score_cell(rows[(a, d)], digits) if (a, d) in rows else ""
                                              for a in agents) + " |")
    lines += [""]

    if any(g["wall_s"] is not None for g in report["groups"]):
        lines += ["Mean wall time per run, s (gradient updates/s):", "",
                  "| dataset | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
        for d in datasets:
            cells = []
            for a in agents:
                g = rows.get((a, d))
                cost = "" if g is None or g["wall_s"] is None else f"{g['wall_s']:.0f}"
                if cost and g["updates_per_s"] is not None:
                    cost += f" ({g['updates_per_s']:.0f})"
                cells.append(cost)
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
        lines += [""]

    lines += ["## Per dataset", "", f"Mean, IQM and median over seeds with {pct}% bootstrap intervals over seeds; "
              "seeds marked * are runs in progress (latest evaluation, at the step shown).", ""]
    for d in datasets:
        lines += [f"### {d}", "", "| agent | mean [CI] | std | IQM [CI] | median [CI] | n | seeds | steps "
                  "| in progress |", "|---|---:|---:|---:|---:|---:|---|---|---|"]
        for a in agents:
            row = rows.get((a, d))
            if row is None:
                continue
            seeds = [_seed(s) for s in row["seeds"]] + [f"{_seed(p['seed'])}*" for p in row["in_progress"]
                                                         if not p["counted"]]
            running = "; ".join(
                f"seed {_seed(p['seed'])}: {_fmt(p['score'], digits) or 'no evaluation yet'} at step "
                f"{p['step']}{'' if p['of'] is None else ' of ' + str(p['of'])}" for p in row["in_progress"])
            stats = [_ci(row["mean"], digits), _fmt(row["std"], digits), _ci(row["iqm"], digits),
                     _ci(row["median"], digits)] if row["n"] else ["", "", "", ""]
            lines.append(f"| {a} | " + " | ".join(stats) + f" | {row['n']} | {', '.join(seeds)} | "
                         f"{', '.join(str(s) for s in row['steps'])} | {running} |")
        lines += [""]
    if "scores_by_dataset" in report.get("figures", {}):
        lines += ["![scores by dataset](scores_by_dataset.png)", ""]

    lines += ["## Aggregates over datasets", ""]
    aggregate = report["aggregate"]
    if aggregate:
        gamma = aggregate["gamma"]
        lines += [f"Over {len(aggregate['datasets'])} dataset(s): {', '.join(aggregate['datasets'])}. IQM: mean of "
                  "the middle 50% of all runs' scores pooled over datasets; median and mean: of the per-dataset "
                  f"means; optimality gap: {gamma:g} minus the mean of min(score, {gamma:g}) (lower is better). "
                  "Bootstrap: runs resampled within each dataset (stratified).", "",
                  "| agent | IQM [CI] | median [CI] | mean [CI] | optimality gap [CI] | runs |",
                  "|---|---:|---:|---:|---:|---:|"]
        for a in agents:
            s = aggregate["agents"][a]
            lines.append(f"| {a} | " + " | ".join(_ci(s[m], digits) for m in AGGREGATES)
                         + f" | {aggregate['runs'][a]} |")
        lines += [""]
        if "aggregate_metrics" in report.get("figures", {}):
            lines += ["![aggregate metrics](aggregate_metrics.png)", ""]
        if "performance_profile" in report.get("figures", {}):
            lines += ["Performance profiles: the fraction of runs (datasets weighted equally) whose score exceeds "
                      f"each threshold, with {pct}% bootstrap bands.", "",
                      "![performance profiles](performance_profile.png)", ""]
    elif METRICS[report["metric"]]["common_scale"]:
        lines += ["Not computed: no dataset on which every agent has runs.", ""]
    else:
        lines += ["Not computed for raw returns: their scale differs between tasks, so a mean or IQM over tasks "
                  "would be dominated by the task with the largest returns. Per-dataset statistics are above; "
                  "for aggregates, use runs with reference returns (`--metric normalized_score`).", ""]

    lines += ["## Probability of improvement", ""]
    pairs = report["probability_of_improvement"]
    if pairs:
        lines += ["P(X > Y): the probability that a run of X scores higher than a run of Y on the same dataset "
                  "(ties count half), averaged over the datasets both ran; it compares ranks within a dataset, "
                  "so it needs no common scale. P(X > Y) + P(Y > X) = 1.", "",
                  f"| X | Y | P(X > Y) [{pct}% CI] | datasets |", "|---|---|---:|---:|"]
        for p in pairs:
            if agent_key(p["x"]) < agent_key(p["y"]):
                lines.append(f"| {p['x']} | {p['y']} | {p['point']:.2f} [{p['low']:.2f}, {p['high']:.2f}] | "
                             f"{len(p['datasets'])} |")
        lines += [""]
        if "probability_of_improvement" in report.get("figures", {}):
            lines += ["![probability of improvement](probability_of_improvement.png)", ""]
    else:
        lines += ["Needs two agents with runs on a common dataset.", ""]

    lines += ["## Learning curves", ""]
    if report["curves"] and not has_curves(report):
        lines += ["Every run was evaluated at one step only (e.g. `trainer.eval_every` = `trainer.steps`): no curves "
                  "to draw; the final scores are in the tables above.", ""]
    elif report["curves"]:
        lines += [f"Mean over seeds at each evaluation with a {pct}% bootstrap band (runs in progress included; "
                  "a point averages the seeds evaluated at that step). x: `global_step` (the steps of all phases "
                  "so far), or `step` for runs recorded before evaluations carried it.", "",
                  "![learning curves](learning_curves.png)", ""]
    else:
        lines += ["No evaluations recorded.", ""]

    lines += ["## Runs", "", "| run | agent | dataset | seed | status | steps | score |",
              "|---|---|---|---:|---|---:|---:|"]
    for r in report["runs"]:
        steps = "" if r["steps"] is None else str(r["steps"])
        if r["status"] != "finished" and r["target_steps"]:
            steps += f" of {r['target_steps']}"
        lines.append(f"| {r['path']} | {r['agent']} | {r['dataset']} | {_seed(r['seed'])} | {r['status']} | "
                     f"{steps} | {_fmt(r['score'], digits)} |")
    return "\n".join(lines) + "\n"
