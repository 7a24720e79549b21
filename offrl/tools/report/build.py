"""The report as data: runs grouped by agent x dataset, scored by a metric, and every statistic of the
report computed (``build_report``), as plain JSON-able data that ``write_report`` renders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from itertools import combinations
from typing import Any

import numpy as np

import offrl
from offrl.core.errors import OffrlError
from offrl.tools.report.runs import Run, agent_key, agent_label, finite
from offrl.tools.report.stats import (
    BOOTSTRAP_SEED,
    CONFIDENCE,
    aggregate_statistics,
    curve_intervals,
    curve_statistics,
    performance_profiles,
    probability_of_improvement,
    task_statistics,
)

# the scores a report can rank runs by: their labels, whether they share one scale across datasets (which
# aggregates over datasets need), the optimality gap's threshold (gamma), the digits shown and the rule stated
METRICS: dict[str, dict[str, Any]] = {
    "normalized_score": {"label": "normalized score", "axis": "normalized score (0 = random, 100 = expert)",
                         "common_scale": True, "gamma": 100.0, "digits": 1,
                         "rule": "D4RL-normalised final return, 100 (R - random) / (expert - random), with the "
                                 "dataset's reference returns"},
    "success_rate": {"label": "success rate", "axis": "success rate (fraction of episodes, 0-1)",
                     "common_scale": True, "gamma": 1.0, "digits": 2, "bounds": (0.0, 1.0),
                     "rule": "fraction of successful evaluation episodes"},
    "return_mean": {"label": "return", "axis": "evaluation return (sum of rewards per episode)",
                    "common_scale": False, "gamma": None, "digits": 1,
                    "rule": "raw final evaluation return (mean over the evaluation episodes)"},
}
# the x axis of a dataset's learning curves, by the trainer.mode of its runs
STEP_AXIS = {"offline": "gradient steps", "online": "environment steps",
             "offline_to_online": "global step (pre-training gradient steps + environment steps)"}


def choose_metric(runs: list[Run], metric: str) -> str:
    """``metric``, or for ``auto`` normalized_score where every evaluated run has one, else return_mean."""
    if metric != "auto":
        return metric
    scored = [r for r in runs if r.eval_history or r.results]
    return "normalized_score" if scored and all(r.value("normalized_score") is not None for r in scored) \
        else "return_mean"


def build_report(runs: list[Run], metric: str = "auto", reps: int = 2000, by: str | None = None,
                 agents: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
                 include_in_progress: bool = False) -> dict[str, Any]:
    """Every number of the report as plain JSON-able data (``write_report`` renders it)."""
    notes: list[str] = []
    if agents:
        runs = [r for r in runs if agent_label(r, by) in agents or r.agent in agents]
    if datasets:
        runs = [r for r in runs if r.dataset in datasets]
    if not runs:
        raise OffrlError("no runs left after --agents/--datasets; check the names against the runs found")
    metric = choose_metric(runs, metric)
    spec = METRICS[metric]
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(agent_label(run, by), run.dataset)].append(run)
    for group in groups.values():
        group.sort(key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))
    agent_list = sorted({a for a, _ in groups}, key=agent_key)
    dataset_list = sorted({d for _, d in groups})

    if not include_in_progress and not any(r.finished and r.value(metric) is not None for r in runs) \
            and any(r.value(metric) is not None for r in runs):
        include_in_progress = True
        notes.append("no finished run yet: the statistics count the runs in progress (as --include-in-progress)")
    counted: dict[tuple[str, str], list[Run]] = {}
    missing_metric: list[str] = []
    for key, group in groups.items():
        usable = [r for r in group if r.finished or include_in_progress]
        counted[key] = [r for r in usable if r.value(metric) is not None]
        missing_metric += [str(r.path) for r in usable if r.value(metric) is None and (r.finished or r.eval_history)]
        seeds = [r.seed for r in group]
        duplicates = sorted({s for s in seeds if s is not None and seeds.count(s) > 1})
        if duplicates:
            notes.append(f"{key[0]} on {key[1]}: seed(s) {duplicates} appear in more than one run directory; "
                         "each run counts")
    if not any(counted.values()):
        if missing_metric:
            hint = " (online runs without reference returns: use --metric return_mean)" \
                if metric == "normalized_score" else ""
            raise OffrlError(f"no run records {metric}{hint}; first without it: {missing_metric[0]}")
        raise OffrlError("no run has an evaluation yet")
    if missing_metric:
        notes.append(f"{len(missing_metric)} run(s) record no {metric} and are left out of the statistics "
                     f"(e.g. {missing_metric[0]})")

    scores = {key: np.array([r.value(metric) for r in rs]) for key, rs in counted.items()}
    stats = task_statistics(scores, reps)
    group_rows = []
    for key in sorted(groups, key=lambda k: (k[1], agent_key(k[0]))):
        group = groups[key]
        in_progress = [r for r in group if not r.finished]
        row = {"agent": key[0], "dataset": key[1], "n": len(counted[key]),
               "seeds": [r.seed for r in counted[key]], "scores": scores[key].tolist(),
               "runs": [str(r.path) for r in counted[key]],
               "steps": sorted({r.steps for r in counted[key] if r.steps is not None}),
               "in_progress": [{"seed": r.seed, "path": str(r.path), "step": r.steps, "of": r.target_steps,
                                "score": r.value(metric), "counted": include_in_progress and r.value(metric)
                                is not None} for r in in_progress],
               "updates_per_s": _mean_of(r.results.get("updates_per_s") for r in counted[key]),
               "wall_s": _mean_of(r.results.get("wall_s") for r in counted[key])}
        row.update(stats.get(key, {}))
        group_rows.append(row)

    report: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "metric": metric, "metric_label": spec["label"], "metric_axis": spec["axis"],
        "metric_rule": spec["rule"], "reps": reps, "confidence": CONFIDENCE, "bootstrap_seed": BOOTSTRAP_SEED,
        "include_in_progress": include_in_progress, "by": by, "agents": agent_list, "datasets": dataset_list,
        "runs": [_run_record(r, metric, by) for r in sorted(runs, key=lambda r: str(r.path))],
        "groups": group_rows, "notes": notes,
    }

    # aggregates over datasets: those on which every agent has counted runs
    common = [d for d in dataset_list if all(len(scores.get((a, d), [])) for a in agent_list)]
    report["aggregate"] = None
    report["performance_profile"] = None
    if spec["common_scale"]:
        if common:
            per_agent = {a: [scores[(a, d)] for d in common] for a in agent_list}
            report["aggregate"] = {"datasets": common, "gamma": spec["gamma"],
                                   "runs": {a: int(sum(len(c) for c in per_agent[a])) for a in agent_list},
                                   "agents": aggregate_statistics(per_agent, spec["gamma"], reps)}
            pooled = np.concatenate([c for cols in per_agent.values() for c in cols])
            low = min(0.0, float(pooled.min()))
            high = float(pooled.max())
            if metric == "success_rate":
                low, high = 0.0, 1.0
            high = high if high > low else low + 1.0
            taus = np.linspace(low, high, 101)
            report["performance_profile"] = {"datasets": common, "taus": taus.tolist(),
                                             "agents": performance_profiles(per_agent, taus, reps)}
            left_out = [d for d in dataset_list if d not in common]
            if left_out:
                notes.append(f"aggregates and profiles use the {len(common)} dataset(s) every agent ran on; "
                             f"left out: {', '.join(left_out)} (choose with --agents / --datasets)")
        else:
            notes.append("no dataset on which every agent has runs: no aggregates over datasets "
                         "(choose agents with --agents)")
    else:
        notes.append("raw returns are on a different scale in every task: aggregates over datasets and "
                     "performance profiles are not computed (per-dataset statistics and the probability of "
                     "improvement are)")

    wanted = {}
    for x, y in combinations(agent_list, 2):
        shared = [d for d in dataset_list if len(scores.get((x, d), [])) and len(scores.get((y, d), []))]
        for a, b in ((x, y), (y, x)):
            if shared:
                wanted[(a, b)] = ([scores[(a, d)] for d in shared], [scores[(b, d)] for d in shared])
    estimates = probability_of_improvement(wanted, reps)
    report["probability_of_improvement"] = [{"x": a, "y": b, "datasets": [d for d in dataset_list if
                                             len(scores.get((a, d), [])) and len(scores.get((b, d), []))],
                                             **estimates[(a, b)]} for a, b in wanted]

    curves = []
    for key in sorted(groups, key=lambda k: (k[1], agent_key(k[0]))):
        group = groups[key]
        curve = curve_statistics(group, metric)
        if curve["x"]:
            curves.append({"agent": key[0], "dataset": key[1], "runs": len(group),
                           "in_progress": sum(not r.finished for r in group), **curve})
    curve_intervals(curves, reps)
    report["curves"] = curves
    report["step_axis"] = {d: _step_axis([r for (a, dd), rs in groups.items() if dd == d for r in rs])
                           for d in dataset_list}
    return report


def _mean_of(values) -> float | None:
    values = [v for v in (finite(v) for v in values) if v is not None]
    return float(np.mean(values)) if values else None


def _step_axis(runs: list[Run]) -> str:
    modes = {r.mode for r in runs if r.mode}
    if not modes:
        return "training steps"
    return STEP_AXIS.get(modes.pop(), "training steps") if len(modes) == 1 else "global step (mixed modes)"


def _run_record(run: Run, metric: str, by: str | None) -> dict[str, Any]:
    return {"path": str(run.path), "agent": agent_label(run, by), "dataset": run.dataset, "seed": run.seed,
            "status": run.status, "steps": run.steps, "target_steps": run.target_steps, "mode": run.mode,
            "score": run.value(metric), "evaluations": len(run.eval_history)}


def _versions() -> dict[str, str]:
    """The versions of offrl and of the packages whose results the report shows ("?" where one is missing)."""
    found = {"offrl": offrl.__version__}
    for name in ("rliable", "matplotlib", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "?"
    return found
