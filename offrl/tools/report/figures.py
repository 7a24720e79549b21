"""The report's figures, drawn with matplotlib only (no pyplot state): learning curves, scores by dataset,
aggregate metrics, performance profiles and the probability of improvement, each a PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from offrl.core.checkpoint import write_atomic
from offrl.tools.report.build import METRICS
from offrl.tools.report.runs import agent_key
from offrl.tools.report.stats import AGGREGATES

# Okabe & Ito (2008), colour-blind safe; yellow last (weak on white)
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def draw_figures(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """Every figure the report has data for, as ``<name>.png`` in ``out``; returns name -> path of those drawn."""
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
    return figures


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", dpi=110)


def _save(figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    write_atomic(path, lambda handle: figure.savefig(handle, format=path.suffix[1:]), "figure")


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


def has_curves(report: dict[str, Any]) -> bool:
    """Some agent was evaluated at more than one step (runs evaluated only at the end have no curve to draw)."""
    return any(len(c["x"]) > 1 for c in report["curves"])


def plot_learning_curves(report: dict[str, Any], path: Path, colours: dict, markers: dict) -> bool:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    curves = report["curves"]
    datasets = [d for d in report["datasets"] if any(c["dataset"] == d for c in curves)]
    if not datasets or not has_curves(report):
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
    pairs = [p for p in report["probability_of_improvement"] if agent_key(p["x"]) < agent_key(p["y"])]
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
