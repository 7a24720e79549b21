"""``offrl report``: tables, aggregate metrics with bootstrap confidence intervals, performance profiles,
probability of improvement and learning curves for a set of runs, computed with rliable (Agarwal et al.,
"Deep RL at the Edge of the Statistical Precipice", 2021).

    offrl report <run or sweep dirs...> [--out DIR] [--metric auto|normalized_score|return_mean|success_rate]
                 [--reps N] [--by KEY] [--agents A,B] [--datasets X,Y] [--include-in-progress]

A run is a directory holding ``results.json`` (finished) or, for a run still training, ``config.yaml``
and ``checkpoints/last.pt`` without ``results.json`` (its evaluations are read from the checkpoint).
Runs are found recursively and grouped by agent x dataset (the dataset's name, or the env id of an
online run). Each run's score is its final evaluation (the last one so far for a run in progress).

The package, one job per module: ``runs`` finds and reads runs, ``stats`` computes the statistics (rliable),
``build`` assembles the report's data (``build_report``), ``tables`` writes report.json and report.md
(``write_report``), ``figures`` draws the figures; the command line is ``offrl.cli.report``.

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

from offrl.tools.report.build import METRICS, STEP_AXIS, build_report, choose_metric
from offrl.tools.report.figures import (
    MARKERS,
    PALETTE,
    draw_figures,
    plot_aggregates,
    plot_learning_curves,
    plot_performance_profile,
    plot_probability_of_improvement,
    plot_scores_by_dataset,
)
from offrl.tools.report.runs import IN_PROGRESS, Run, agent_key, agent_label, find_runs, read_run
from offrl.tools.report.stats import (
    AGGREGATES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    aggregate_statistics,
    columnwise_intervals,
    curve_intervals,
    curve_statistics,
    improvement,
    iqm,
    performance_profiles,
    probability_of_improvement,
    task_statistics,
)
from offrl.tools.report.tables import markdown, score_cell, write_report

__all__ = [
    "AGGREGATES", "BOOTSTRAP_SEED", "CONFIDENCE", "IN_PROGRESS", "MARKERS", "METRICS", "PALETTE", "STEP_AXIS",
    "Run", "agent_key", "agent_label", "aggregate_statistics", "build_report", "choose_metric",
    "columnwise_intervals", "curve_intervals", "curve_statistics", "draw_figures", "find_runs", "improvement", "iqm",
    "markdown", "performance_profiles", "plot_aggregates", "plot_learning_curves", "plot_performance_profile",
    "plot_probability_of_improvement", "plot_scores_by_dataset", "probability_of_improvement", "read_run",
    "score_cell", "task_statistics", "write_report",
]
