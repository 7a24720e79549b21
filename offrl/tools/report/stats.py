"""Aggregate statistics of run scores with rliable (Agarwal et al., "Deep RL at the Edge of the Statistical
Precipice", 2021): per-dataset statistics over seeds, IQM, median, mean and optimality gap over datasets,
performance profiles, the probability of improvement and learning curves, each with bootstrap intervals."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from offrl.tools.report.runs import Run

CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
AGGREGATES = ("iqm", "median", "mean", "optimality_gap")


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
