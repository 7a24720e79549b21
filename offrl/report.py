"""``offrl report``: tables, aggregate metrics with bootstrap confidence intervals, performance profiles,
probability of improvement and learning curves for a set of runs, computed with rliable (Agarwal et al.,
"Deep RL at the Edge of the Statistical Precipice", 2021).

    offrl report <run or sweep dirs...> [--out DIR] [--metric auto|normalized_score|return_mean|success_rate]
                 [--reps N] [--by KEY] [--agents A,B] [--datasets X,Y] [--include-in-progress]

A run is a directory holding ``results.json`` (finished) or, for a run still training, ``config.yaml``
and ``checkpoints/last.pt`` without ``results.json`` (its evaluations are read from the checkpoint).
Runs are found recursively and grouped by agent x dataset (the dataset's name, or the env id of an
online run). Each run's score is its final evaluation (the last one so far for a run in progress).

Rules (also written into every report):
- per-dataset statistics are over seeds: mean, std (population, ddof=0), IQM, median, each with a
  bootstrap 95% interval over seeds;
- aggregates over datasets (IQM, median, mean, optimality gap) and performance profiles need scores on
  one scale: they are computed for normalized scores (D4RL: 0 = random, 100 = expert; optimality gap
  below 100) and success rates (gap below 1), over the datasets on which every agent has runs, with
  rliable's stratified bootstrap (runs resampled within each dataset);
- raw returns (--metric return_mean, online runs without reference returns) differ in scale between
  tasks, so they get per-dataset statistics only; the probability of improvement needs no common scale
  (it compares runs within a task, then averages over tasks) and is reported for every metric;
- runs in progress appear in the tables and learning curves, marked, and count in the statistics only
  with --include-in-progress.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from offrl.errors import OffrlError

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
AGENT_ORDER = ("bc", "td3bc", "prdc", "a2pr", "odice", "iql", "sac", "pmoe")
# Okabe & Ito (2008), colour-blind safe; yellow last (weak on white)
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
STEP_AXIS = {"offline": "gradient steps", "online": "environment steps",
             "offline_to_online": "global step (pre-training gradient steps + environment steps)"}
IN_PROGRESS = "in progress"
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


# ---------------------------------------------------------------------- runs
@dataclass
class Run:
    path: Path
    agent: str
    dataset: str
    seed: int | None
    status: str  # "finished" | "in progress"
    results: dict[str, Any]  # results.json ({} for a run in progress)
    eval_history: list[dict[str, Any]]
    mode: str | None  # trainer.mode: offline | online | offline_to_online (None: unknown)
    steps: int | None  # steps of the last phase done
    target_steps: int | None = None  # trainer.steps of a run in progress
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def value(self, metric: str) -> float | None:
        """The run's score: results.json's top-level value, else its last evaluation's."""
        value = self.results.get(metric)
        if value is None and self.eval_history:
            value = self.eval_history[-1].get(metric)
        return _finite(value)

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """(x, value) per evaluation; x = global_step (steps of all phases so far), or step in runs
        written before evaluations carried it (single-phase runs, where the two agree)."""
        points = []
        for entry in self.eval_history:
            value = _finite(entry.get(metric))
            x = entry.get("global_step", entry.get("step"))
            if value is not None and x is not None:
                points.append((int(x), value))
        return points


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def find_runs(roots: Sequence[Path]) -> list[Run]:
    """Every run under ``roots`` (each a run directory or a folder of them, searched recursively)."""
    import os

    seen: set[Path] = set()
    walked: set[Path] = set()
    runs: list[Run] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise OffrlError(f"{root}: no such file or directory; expected a run directory or a sweep directory")
        if not root.is_dir():
            raise OffrlError(f"{root}: not a directory; expected a run directory or a sweep directory")
        for here, dirs, files in os.walk(root, followlinks=True):
            folder = Path(here)
            if folder.resolve() in walked:  # a link back to a folder already searched
                dirs[:] = []
                continue
            walked.add(folder.resolve())
            if _is_run(folder, files):
                dirs[:] = []  # a run's subfolders (checkpoints, tb, snapshots) hold no runs
                key = folder.resolve()
                if key not in seen:
                    seen.add(key)
                    runs.append(read_run(folder))
            else:
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return runs


def _is_run(folder: Path, files: list[str]) -> bool:
    """A run directory; the directory of seeds trained in one process (``seeds=[...]``) is not one, its
    seed_<s>/ subdirectories are."""
    if "results.json" in files:
        return True
    return ("config.yaml" in files and (folder / "checkpoints" / "last.pt").is_file()
            and _read_config(folder).get("seeds") is None)


def _read_config(folder: Path) -> dict[str, Any]:
    import yaml

    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def _config_get(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def read_run(folder: Path) -> Run:
    """One run directory; an unreadable results.json or checkpoint is an OffrlError naming the file."""
    config = _read_config(folder)
    results_path = folder / "results.json"
    if results_path.is_file():
        try:
            results = json.loads(results_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            reason = err.strerror if isinstance(err, OSError) else f"{type(err).__name__}: {str(err).splitlines()[0]}"
            raise OffrlError(f"{results_path}: unreadable results file ({reason}); expected the JSON "
                             "written by offrl train") from None
        if not isinstance(results, dict) or not isinstance(results.get("agent"), str):
            raise OffrlError(f"{results_path}: not an offrl results file (no 'agent' key); expected the JSON "
                             "written by offrl train")
        history = results.get("eval_history") or []
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise OffrlError(f"{results_path}: 'eval_history' is not a list of evaluations")
        dataset = results.get("dataset") or results.get("env_id") or _config_get(config, "dataset.name") or "?"
        seed = results.get("seed", config.get("seed"))
        mode = _config_get(config, "trainer.mode") or _mode_from_phases(results.get("phase_steps"), history)
        return Run(folder, results["agent"], str(dataset), seed if isinstance(seed, int) else None, "finished",
                   results, history, mode, results.get("steps"), config=config)

    from offrl import checkpoint

    state = checkpoint.load(folder / "checkpoints" / "last.pt")
    info = state.get("run") or {}
    saved = state.get("config") or {}
    if not config:
        config = saved if isinstance(saved, dict) else {}
    agent = info.get("agent") or _config_get(config, "agent.name")
    dataset = info.get("dataset") or config.get("env") or _config_get(config, "dataset.name") or info.get("env_id")
    if not agent:
        raise OffrlError(f"{folder}: run in progress without an agent name in config.yaml or its checkpoint")
    history = list(state.get("eval_history") or [])
    phases = state.get("phases") or {}
    mode = _config_get(config, "trainer.mode") or _mode_from_phases({k: 0 for k in phases}, history)
    done = [phase.get("step") for phase in phases.values() if isinstance(phase, dict)]
    last_step = sum(done) if done and all(isinstance(d, int) for d in done) else None  # the global step
    seed = config.get("seed")
    target = _config_get(config, "trainer.steps")
    pretrain = _config_get(config, "trainer.pretrain_steps")
    if mode == "offline_to_online" and isinstance(target, int) and isinstance(pretrain, int):
        target += pretrain
    return Run(folder, str(agent), str(dataset or "?"), seed if isinstance(seed, int) else None, IN_PROGRESS, {},
               history, mode, last_step, target if isinstance(target, int) else None, config)


def _mode_from_phases(phase_steps: Any, history: list[dict[str, Any]]) -> str | None:
    names = set(phase_steps or {}) | {e["phase"] for e in history if "phase" in e}
    if names == {"offline"}:
        return "offline"
    if names == {"online"}:
        return "online"
    if "pretrain" in names:
        return "offline_to_online"
    return None


# ---------------------------------------------------------------------- statistics (rliable)
@contextmanager
def _bootstrap_rng(seed: int = BOOTSTRAP_SEED) -> Iterator[None]:
    """rliable's stratified bootstraps draw from numpy's global RNG: seed it for reproducible
    intervals and give the caller's state back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        np.random.set_state(state)


def _parts(columns: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """Scores of one agent, one array per dataset, as rliable takes them: a (runs x datasets) matrix
    when every dataset has the same number of runs (rliable's StratifiedBootstrap), else one
    (runs x 1) array per dataset (StratifiedIndependentBootstrap, each dataset resampled on its own)."""
    if len({len(c) for c in columns}) == 1:
        return np.stack(columns, axis=1)
    return [c[:, None] for c in columns]


def _columns(parts: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The inverse of ``_parts`` for the arguments a bootstrap function receives."""
    if len(parts) == 1:
        return [parts[0][:, j] for j in range(parts[0].shape[1])]
    return [p[:, 0] for p in parts]


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy's trim_mean cutting 25% at each end)."""
    from scipy.stats import trim_mean

    return float(trim_mean(values, proportiontocut=0.25, axis=None))


def _aggregate_function(gamma: float) -> Callable[..., np.ndarray]:
    """IQM, median, mean and optimality gap over runs and datasets, as rliable defines them; with unequal
    runs per dataset, the IQM and the gap pool all runs and the mean/median are over dataset means."""
    from rliable import metrics

    def aggregate(*parts: np.ndarray) -> np.ndarray:
        if len(parts) == 1:
            m = parts[0]
            return np.array([metrics.aggregate_iqm(m), metrics.aggregate_median(m), metrics.aggregate_mean(m),
                             metrics.aggregate_optimality_gap(m, gamma)])
        cols = _columns(parts)
        pooled = np.concatenate(cols)
        means = [c.mean() for c in cols]
        return np.array([iqm(pooled), np.median(means), np.mean(means), gamma - np.mean(np.minimum(pooled, gamma))])

    return aggregate


AGGREGATES = ("iqm", "median", "mean", "optimality_gap")


def _interval(point: np.ndarray, ci: np.ndarray, i: int) -> dict[str, float]:
    return {"point": float(point[i]), "low": float(ci[0][i]), "high": float(ci[1][i])}


def _estimates(score_dict: dict[Any, Any], func: Callable[..., np.ndarray], reps: int):
    from rliable import library

    with _bootstrap_rng():
        return library.get_interval_estimates(score_dict, func, reps=reps, confidence_interval_size=CONFIDENCE)


def columnwise_intervals(columns: list[np.ndarray], stats: Callable[[np.ndarray], np.ndarray],
                         reps: int) -> list[np.ndarray]:
    """Bootstrap intervals of statistics of each column (the seeds of one group, or those evaluated at
    one step), every column resampled on its own. Columns of equal length go to rliable as one
    (runs x columns) matrix, whose StratifiedBootstrap resamples the runs of each column independently.
    ``stats`` maps such a matrix to a (statistics x columns) array. Returns, per column, a
    (3 x statistics) array: point estimates, lower and upper bounds."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, column in enumerate(columns):
        by_length[len(column)].append(i)
    matrices = {n: np.stack([columns[i] for i in index], axis=1) for n, index in by_length.items()}
    points, cis = _estimates(matrices, lambda m: stats(m).ravel(), reps) if matrices else ({}, {})
    out: list[np.ndarray] = [np.empty(0)] * len(columns)
    for n, index in by_length.items():
        shape = (-1, len(index))
        point, low, high = (np.asarray(a).reshape(shape) for a in (points[n], cis[n][0], cis[n][1]))
        for j, i in enumerate(index):
            out[i] = np.stack([point[:, j], low[:, j], high[:, j]])
    return out


def _seed_statistics(m: np.ndarray) -> np.ndarray:
    """Mean, IQM and median over the seeds (rows) of each column."""
    from scipy.stats import trim_mean

    return np.stack([m.mean(axis=0), trim_mean(m, proportiontocut=0.25, axis=0), np.median(m, axis=0)])


def task_statistics(scores: dict[tuple[str, str], np.ndarray], reps: int) -> dict[tuple[str, str], dict]:
    """Per (agent, dataset): mean, IQM, median over seeds with bootstrap intervals, std (ddof=0)."""
    keys = [key for key, values in scores.items() if len(values)]
    intervals = columnwise_intervals([scores[key] for key in keys], _seed_statistics, reps)
    stats = {}
    for key, ci in zip(keys, intervals):
        values = scores[key]
        stats[key] = {name: {"point": float(ci[0, i]), "low": float(ci[1, i]), "high": float(ci[2, i])}
                      for i, name in enumerate(("mean", "iqm", "median"))}
        stats[key].update(std=float(values.std()), min=float(values.min()), max=float(values.max()))
    return stats


def aggregate_statistics(per_agent: dict[str, list[np.ndarray]], gamma: float, reps: int) -> dict[str, dict]:
    """IQM, median, mean, optimality gap over datasets with stratified-bootstrap intervals."""
    points, cis = _estimates({a: _parts(cols) for a, cols in per_agent.items()}, _aggregate_function(gamma), reps)
    return {agent: {name: _interval(points[agent], cis[agent], i) for i, name in enumerate(AGGREGATES)}
            for agent in per_agent}


def _score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """rliable's score distribution (the fraction of all runs and datasets scoring above each tau),
    vectorised over tau (rliable's default loops over tau in Python)."""
    return (scores[..., None] > taus).mean(axis=tuple(range(scores.ndim)))


def performance_profiles(per_agent: dict[str, list[np.ndarray]], taus: np.ndarray, reps: int) -> dict[str, dict]:
    """Score distributions: the fraction of runs scoring above each threshold tau (rliable's
    ``create_performance_profile``; with unequal runs per dataset, the per-dataset fractions averaged)."""
    from rliable import library

    rectangular = {a: _parts(c) for a, c in per_agent.items() if isinstance(_parts(c), np.ndarray)}
    ragged = {a: _parts(c) for a, c in per_agent.items() if a not in rectangular}
    profiles, cis = {}, {}
    if rectangular:
        with _bootstrap_rng():
            p, c = library.create_performance_profile(rectangular, taus, custom_profile_func=_score_distribution,
                                                      reps=reps, confidence_interval_size=CONFIDENCE)
        profiles.update(p)
        cis.update(c)
    if ragged:
        def profile(*parts: np.ndarray) -> np.ndarray:
            return np.mean([(col[:, None] > taus[None, :]).mean(axis=0) for col in _columns(parts)], axis=0)

        p, c = _estimates(ragged, profile, reps)
        profiles.update(p)
        cis.update(c)
    return {a: {"fraction": np.asarray(profiles[a]).tolist(), "low": np.asarray(cis[a][0]).tolist(),
                "high": np.asarray(cis[a][1]).tolist()} for a in per_agent}


def improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) over datasets: x is (runs of X x datasets), y (runs of Y x datasets); on each dataset the
    share of (x run, y run) pairs with x above y, ties half (Mann-Whitney U / (n_x n_y)), averaged over
    datasets. The same number as rliable's ``metrics.probability_of_improvement`` (checked in the tests),
    without its per-call scipy overhead, which made bootstraps of many pairs take minutes."""
    diff = x[:, None, :] - y[None, :, :]
    return float(np.mean(np.mean(diff > 0, axis=(0, 1)) + 0.5 * np.mean(diff == 0, axis=(0, 1))))


def probability_of_improvement(pairs: dict[tuple[str, str], tuple[list[np.ndarray], list[np.ndarray]]],
                               reps: int) -> dict[tuple[str, str], dict[str, float]]:
    """P(X > Y) for each (X, Y) with its scores per shared dataset, with rliable's independent stratified
    bootstrap (the runs of X and of Y resampled separately within each dataset)."""
    results = {}
    rectangular, ragged = {}, {}
    for key, (x_cols, y_cols) in pairs.items():
        x_parts, y_parts = _parts(x_cols), _parts(y_cols)
        if isinstance(x_parts, np.ndarray) and isinstance(y_parts, np.ndarray):
            rectangular[key] = [x_parts, y_parts]
        else:
            ragged[key] = [c[:, None] for c in x_cols] + [c[:, None] for c in y_cols]
    if rectangular:
        points, cis = _estimates(rectangular, lambda x, y: np.array([improvement(x, y)]), reps)
        results.update({key: _interval(points[key], cis[key], 0) for key in rectangular})
    for key, parts in ragged.items():
        n = len(parts) // 2

        def func(*arrays: np.ndarray, n: int = n) -> np.ndarray:
            return np.array([np.mean([improvement(arrays[i], arrays[n + i]) for i in range(n)])])

        points, cis = _estimates({key: parts}, func, reps)
        results[key] = _interval(points[key], cis[key], 0)
    return results


def curve_statistics(runs: list[Run], metric: str) -> dict[str, Any]:
    """The values of every run at each evaluation step (x), for ``curve_intervals``."""
    by_x: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for x, value in run.curve(metric):
            by_x[x].append(value)
    xs = sorted(by_x)
    starts = {e["phase"]: e["global_step"] - e["step"] for run in runs for e in run.eval_history
              if {"phase", "global_step", "step"} <= set(e) and e["global_step"] > e["step"]}
    return {"x": xs, "values": [np.array(by_x[x]) for x in xs], "n": [len(by_x[x]) for x in xs],
            "phase_starts": starts}


def curve_intervals(curves: list[dict[str, Any]], reps: int) -> None:
    """Mean over seeds at each step with a bootstrap interval (the seeds evaluated at that step
    resampled), for all curves in one pass; adds mean/low/high to each curve and drops its values."""
    columns = [v for c in curves for v in c["values"]]
    intervals = iter(columnwise_intervals(columns, lambda m: m.mean(axis=0)[None, :], reps))
    for c in curves:
        ci = [next(intervals) for _ in c["values"]]
        c["mean"] = [float(i[0, 0]) for i in ci]
        c["low"] = [float(i[1, 0]) for i in ci]
        c["high"] = [float(i[2, 0]) for i in ci]
        del c["values"]


# ---------------------------------------------------------------------- the report
def _agent_key(label: str) -> tuple[int, str]:
    name = label.split("[")[0]
    return (AGENT_ORDER.index(name) if name in AGENT_ORDER else len(AGENT_ORDER), label)


def _label(run: Run, by: str | None) -> str:
    if not by:
        return run.agent
    values = [_config_get(run.config, key) for key in by.split(",")]
    shown = ["?" if v is None else Path(v).name if isinstance(v, str) and "/" in v else str(v) for v in values]
    return f"{run.agent}[{','.join(shown)}]"  # a path (synthetic.model) by its last part


def choose_metric(runs: list[Run], metric: str) -> str:
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
        runs = [r for r in runs if _label(r, by) in agents or r.agent in agents]
    if datasets:
        runs = [r for r in runs if r.dataset in datasets]
    if not runs:
        raise OffrlError("no runs left after --agents/--datasets; check the names against the runs found")
    metric = choose_metric(runs, metric)
    spec = METRICS[metric]
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(_label(run, by), run.dataset)].append(run)
    for group in groups.values():
        group.sort(key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))
    agent_list = sorted({a for a, _ in groups}, key=_agent_key)
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
    for key in sorted(groups, key=lambda k: (k[1], _agent_key(k[0]))):
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
    for key in sorted(groups, key=lambda k: (k[1], _agent_key(k[0]))):
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
    values = [v for v in (_finite(v) for v in values) if v is not None]
    return float(np.mean(values)) if values else None


def _step_axis(runs: list[Run]) -> str:
    modes = {r.mode for r in runs if r.mode}
    if not modes:
        return "training steps"
    return STEP_AXIS.get(modes.pop(), "training steps") if len(modes) == 1 else "global step (mixed modes)"


def _run_record(run: Run, metric: str, by: str | None) -> dict[str, Any]:
    return {"path": str(run.path), "agent": _label(run, by), "dataset": run.dataset, "seed": run.seed,
            "status": run.status, "steps": run.steps, "target_steps": run.target_steps, "mode": run.mode,
            "score": run.value(metric), "evaluations": len(run.eval_history)}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import offrl

    found = {"offrl": offrl.__version__}
    for name in ("rliable", "matplotlib", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "?"
    return found


# ---------------------------------------------------------------------- writing
def write_report(report: dict[str, Any], out: Path, command: str = "") -> dict[str, Path]:
    """report.json, report.md and the figures into ``out``; returns the files written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OffrlError(f"--out {out}: cannot create the directory ({err.strerror or err})") from None
    colours = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(report["agents"])}
    # past len(PALETTE) agents the colours repeat: shift the markers so that no two agents share both
    markers = {a: MARKERS[(i + i // len(PALETTE)) % len(MARKERS)] for i, a in enumerate(report["agents"])}
    figures: dict[str, Path] = {}
    plots = [("learning_curves", plot_learning_curves), ("scores_by_dataset", plot_scores_by_dataset),
             ("aggregate_metrics", plot_aggregates), ("performance_profile", plot_performance_profile),
             ("probability_of_improvement", plot_probability_of_improvement)]
    for name, plot in plots:
        path = out / f"{name}.png"
        if plot(report, path, colours, markers):
            figures[name] = path
    report["figures"] = {name: path.name for name, path in figures.items()}
    report["command"] = command
    files = {"report.json": out / "report.json", "report.md": out / "report.md"}
    try:
        files["report.json"].write_text(json.dumps(report, indent=2))
        files["report.md"].write_text(markdown(report))
    except OSError as err:
        raise OffrlError(f"--out {out}: cannot write the report ({err.strerror or err})") from None
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
            if _agent_key(p["x"]) < _agent_key(p["y"]):
                lines.append(f"| {p['x']} | {p['y']} | {p['point']:.2f} [{p['low']:.2f}, {p['high']:.2f}] | "
                             f"{len(p['datasets'])} |")
        lines += [""]
        if "probability_of_improvement" in report.get("figures", {}):
            lines += ["![probability of improvement](probability_of_improvement.png)", ""]
    else:
        lines += ["Needs two agents with runs on a common dataset.", ""]

    lines += ["## Learning curves", ""]
    if report["curves"] and not _has_curves(report):
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


# ---------------------------------------------------------------------- figures (matplotlib only)
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", dpi=110)


def _save(figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    figure.savefig(path)


def _steps_formatter():
    from matplotlib.ticker import FuncFormatter

    def label(x: float, _pos: int | None = None) -> str:
        if abs(x) >= 1e6:
            return f"{x / 1e6:g}M"
        if abs(x) >= 1e3:
            return f"{x / 1e3:g}k"
        return f"{x:g}"

    return FuncFormatter(label)


def _grid(figure, n: int, columns: int = 3):
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _style(ax) -> None:
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)


def _clip_to_bounds(ax, metric: str) -> None:
    """Keep a bounded metric's y axis inside its range (all-zero success rates otherwise get a -0.04 ... 0.04 axis)."""
    bounds = METRICS[metric].get("bounds")
    if bounds is None:
        return
    low, high = ax.get_ylim()
    margin = 0.03 * (bounds[1] - bounds[0])
    low, high = max(low, bounds[0] - margin), min(high, bounds[1] + margin)
    ax.set_ylim(low, max(high, low + 0.1 * (bounds[1] - bounds[0])))


def _has_curves(report: dict[str, Any]) -> bool:
    """Some agent was evaluated at more than one step (runs evaluated only at the end have no curve to draw)."""
    return any(len(c["x"]) > 1 for c in report["curves"])


def plot_learning_curves(report: dict[str, Any], path: Path, colours: dict, markers: dict) -> bool:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    curves = report["curves"]
    datasets = [d for d in report["datasets"] if any(c["dataset"] == d for c in curves)]
    if not datasets or not _has_curves(report):
        return False
    cols = min(3, len(datasets))
    figure = _figure(4.6 * cols, 3.4 * math.ceil(len(datasets) / cols) + 0.5)
    legend_rows = math.ceil(len(report["agents"]) / _legend_columns(figure, report["agents"]))
    figure.set_figheight(figure.get_figheight() + 0.25 * (legend_rows - 1))  # the legend above takes its own room
    single = False
    for index, (ax, d) in enumerate(zip(_grid(figure, len(datasets)), datasets)):
        running = 0
        starts: dict[str, int] = {}
        for c in (c for c in curves if c["dataset"] == d):
            x = np.array(c["x"])
            colour = colours[c["agent"]]
            if len(x) > 1:
                ax.fill_between(x, c["low"], c["high"], color=colour, alpha=0.2, linewidth=0)
            else:  # one evaluation (e.g. only at the end): a band would be invisible, so a bar
                single = True
                mean = c["mean"][0]
                ax.errorbar(x, [mean], yerr=[[mean - c["low"][0]], [c["high"][0] - mean]], color=colour,
                            capsize=3, linewidth=1.2)
            ax.plot(x, c["mean"], color=colour, linewidth=1.8, marker=markers[c["agent"]] if len(x) <= 25 else None,
                    markersize=4)
            running += c["in_progress"]
            starts.update(c.get("phase_starts", {}))
        for phase, start in starts.items():  # where a later phase (online after pre-training) begins
            ax.axvline(start, color="0.45", linestyle=":", linewidth=1.2)
            ax.annotate(f" {phase} starts", (start, 1), xycoords=("data", "axes fraction"), va="top",
                        fontsize=7, color="0.35")
        title = d if not running else f"{d} ({running} run{'s' if running > 1 else ''} in progress)"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(report["step_axis"].get(d, "training steps"), fontsize=9)
        if index % cols == 0:
            ax.set_ylabel(report["metric_axis"], fontsize=9)
        ax.xaxis.set_major_formatter(_steps_formatter())
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], integer=True))
        ax.set_xlim(left=0)  # training starts at step 0: a lone final evaluation shows where the budget ends
        ax.tick_params(labelsize=8)
        _clip_to_bounds(ax, report["metric"])
        _style(ax)
    handles = [Line2D([], [], color=colours[a], marker=markers[a], linewidth=1.8, label=a) for a in report["agents"]]
    title = f"mean over seeds, shaded: {int(100 * report['confidence'])}% bootstrap interval"
    if single:
        title += " (a bar at a lone evaluation)"
    if report.get("by"):
        title += f"; agent[{report['by']}]"  # what the bracketed labels of --by hold
    figure.legend(handles=handles, loc="outside upper center", ncols=_legend_columns(figure, report["agents"]),
                  frameon=False, title=title)
    _save(figure, path)
    return True


def _legend_columns(figure, labels: list[str], at_most: int = 6) -> int:
    """Legend columns that fit the figure's width (long --by labels get fewer columns, more rows)."""
    entry_inches = 0.6 + 0.075 * max(len(label) for label in labels)  # marker + text at the legend's font size
    return max(1, min(len(labels), at_most, int(figure.get_figwidth() / entry_inches)))


def plot_scores_by_dataset(report: dict[str, Any], path: Path, colours: dict, markers: dict) -> bool:
    from matplotlib.lines import Line2D

    groups = [g for g in report["groups"] if g["n"]]
    datasets = [d for d in report["datasets"] if any(g["dataset"] == d for g in groups)]
    if not datasets:
        return False
    agents = report["agents"]
    cols = min(3, len(datasets))
    figure = _figure(max(4.6, 0.6 * len(agents) + 2.2) * cols, 3.4 * math.ceil(len(datasets) / cols) + 0.5)
    rng = np.random.default_rng(0)
    for index, (ax, d) in enumerate(zip(_grid(figure, len(datasets)), datasets)):
        for i, a in enumerate(agents):
            g = next((g for g in groups if g["dataset"] == d and g["agent"] == a), None)
            if g is None:
                continue
            jitter = rng.uniform(-0.12, 0.12, len(g["scores"]))
            ax.scatter(i + jitter, g["scores"], s=14, color=colours[a], alpha=0.55, linewidths=0)
            m = g["mean"]
            ax.errorbar([i + 0.28], [m["point"]], yerr=[[m["point"] - m["low"]], [m["high"] - m["point"]]],
                        fmt=markers[a], color=colours[a], markersize=6, capsize=3, linewidth=1.5)
        ax.set_xticks(range(len(agents)), agents, rotation=30 if len(agents) > 3 else 0,
                      ha="right" if len(agents) > 3 else "center", fontsize=8)
        ax.set_xlim(-0.6, len(agents) - 0.4)
        ax.set_title(d, fontsize=10)
        if index % cols == 0:
            ax.set_ylabel(report["metric_axis"], fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        _clip_to_bounds(ax, report["metric"])
        _style(ax)
    handles = [Line2D([], [], color="0.4", marker="o", linestyle="none", alpha=0.55, markersize=4,
                      label="one seed (final evaluation)"),
               Line2D([], [], color="0.2", marker="o", linestyle="-", markersize=6,
                      label=f"mean, {int(100 * report['confidence'])}% bootstrap interval")]
    figure.legend(handles=handles, loc="outside upper center", ncols=2, frameon=False)
    _save(figure, path)
    return True


def plot_aggregates(report: dict[str, Any], path: Path, colours: dict, markers: dict) -> bool:
    from matplotlib.ticker import MaxNLocator

    aggregate = report["aggregate"]
    if not aggregate:
        return False
    agents = report["agents"]
    titles = {"iqm": "IQM", "median": "Median", "mean": "Mean",
              "optimality_gap": f"Optimality gap (below {aggregate['gamma']:g}; lower is better)"}
    figure = _figure(13, 0.45 * len(agents) + 1.9)
    axes = figure.subplots(1, len(AGGREGATES), sharey=True)
    y = np.arange(len(agents))[::-1]
    for ax, name in zip(axes, AGGREGATES):
        for yi, a in zip(y, agents):
            s = aggregate["agents"][a][name]
            ax.hlines(yi, s["low"], s["high"], color=colours[a], linewidth=6, alpha=0.75)
            ax.plot([s["point"]], [yi], marker="o", color=colours[a], markersize=7, markeredgecolor="black")
        ax.set_title(titles[name], fontsize=10, wrap=True)
        ax.set_xlabel(report["metric_label"], fontsize=9)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.grid(True, axis="x", alpha=0.3, linewidth=0.6)
        ax.spines[["top", "right", "left"]].set_visible(False)
    axes[0].set_yticks(y, agents, fontsize=9)
    axes[0].set_ylim(-0.7, len(agents) - 0.3)
    figure.suptitle(f"{report['metric_label'].capitalize()} over {len(aggregate['datasets'])} dataset(s): point "
                    f"estimate (dot) and {int(100 * report['confidence'])}% stratified bootstrap interval",
                    fontsize=10)
    _save(figure, path)
    return True


def plot_performance_profile(report: dict[str, Any], path: Path, colours: dict, markers: dict) -> bool:
    profile = report["performance_profile"]
    if not profile:
        return False
    taus = np.array(profile["taus"])
    figure = _figure(6.4, 4.3)
    ax = figure.subplots()
    every = max(1, len(taus) // 10)
    for a in report["agents"]:
        p = profile["agents"][a]
        ax.fill_between(taus, p["low"], p["high"], color=colours[a], alpha=0.2, linewidth=0)
        ax.plot(taus, p["fraction"], color=colours[a], linewidth=1.8, marker=markers[a], markevery=every,
                markersize=5, label=a)
    ax.set_xlabel(f"threshold τ ({report['metric_axis']})", fontsize=9)
    ax.set_ylabel("fraction of runs with score > τ", fontsize=9)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Performance profiles over {len(profile['datasets'])} dataset(s), "
                 f"{int(100 * report['confidence'])}% bootstrap bands", fontsize=10)
    ax.tick_params(labelsize=8)
    _style(ax)
    ax.legend(fontsize=8, frameon=False, loc="best")
    _save(figure, path)
    return True


def plot_probability_of_improvement(report: dict[str, Any], path: Path, colours: dict, markers: dict) -> bool:
    pairs = [p for p in report["probability_of_improvement"] if _agent_key(p["x"]) < _agent_key(p["y"])]
    if not pairs:
        return False
    figure = _figure(7.2, 0.42 * len(pairs) + 1.6)
    ax = figure.subplots()
    y = np.arange(len(pairs))[::-1]
    for yi, p in zip(y, pairs):
        ax.hlines(yi, p["low"], p["high"], color=colours[p["x"]], linewidth=6, alpha=0.75)
        ax.plot([p["point"]], [yi], marker="o", color=colours[p["x"]], markersize=7, markeredgecolor="black")
    ax.axvline(0.5, color="0.4", linestyle="--", linewidth=1)
    ax.set_yticks(y, [f"P({p['x']} > {p['y']})" for p in pairs], fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.7, len(pairs) - 0.3)
    ax.set_xlabel("probability of improvement (a run of X scores above a run of Y on the same dataset)", fontsize=9)
    ax.set_title(f"Probability of improvement, {int(100 * report['confidence'])}% bootstrap intervals "
                 "(dashed: 0.5, no difference)", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(True, axis="x", alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right", "left"]].set_visible(False)
    _save(figure, path)
    return True


# ---------------------------------------------------------------------- command line
def _reps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 10:
        raise argparse.ArgumentTypeError(f"{value} bootstrap replications are too few; use at least 10")
    return value


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def parser() -> argparse.ArgumentParser:
    rules = __doc__[__doc__.index("Rules"):].strip()
    from offrl.cli import OneLineParser

    examples = """examples:
  offrl report multirun/2026-11-27/10-00-00                    every run under a sweep directory
  offrl report runs/a runs/b --out reports/hopper --reps 50000  several directories, more replications
  offrl report runs --metric return_mean                        online runs (no reference returns)
  offrl report runs --by agent.update_mode --agents odice       one agent split by a config key"""
    p = OneLineParser(prog="offrl report", formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog=f"{rules}\n\n{examples}",
                      description="Tables, aggregate metrics with 95% bootstrap intervals, performance profiles, "
                                  "probability of improvement and learning curves for a set of runs (rliable); "
                                  "writes report.md, report.json and PNG figures into --out.")
    p.add_argument("dirs", nargs="+", type=Path, help="run directories or sweep directories (searched recursively)")
    p.add_argument("--out", type=Path, default=Path("offrl-report"), help="output directory (default ./offrl-report)")
    p.add_argument("--metric", choices=["auto", *METRICS], default="auto",
                   help="score of each run (default auto: normalized_score where every run has reference returns, "
                        "else return_mean)")
    p.add_argument("--reps", type=_reps, default=2000, help="bootstrap replications (default 2000)")
    p.add_argument("--by", help="split each agent by dotted config keys (comma-separated), e.g. agent.update_mode")
    p.add_argument("--agents", type=_names, help="only these agents (comma-separated; labels with --by)")
    p.add_argument("--datasets", type=_names, help="only these datasets (comma-separated)")
    p.add_argument("--include-in-progress", action="store_true",
                   help="count runs in progress (their latest evaluation) in the statistics")
    return p


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    try:
        runs = find_runs(args.dirs)
        if not runs:
            raise OffrlError(f"no runs found under {', '.join(str(d) for d in args.dirs)} (expected directories "
                             "with results.json, or config.yaml and checkpoints/last.pt for runs in progress)")
        report = build_report(runs, args.metric, args.reps, args.by, args.agents, args.datasets,
                              args.include_in_progress)
        command = "offrl report " + " ".join(argv)
        files = write_report(report, args.out, command)
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    running = sum(r["status"] != "finished" for r in report["runs"])
    print(f"offrl: report on {len(report['runs'])} run(s) ({running} in progress), {len(report['agents'])} agent(s) x "
          f"{len(report['datasets'])} dataset(s), metric {report['metric']}: {args.out / 'report.md'} "
          f"(+ report.json, {sum(k.endswith('.png') for k in files)} figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
