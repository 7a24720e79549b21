"""Dataset quality analysis: TQ and SACo (Schweighofer et al., 2022) plus the statistics a practitioner
checks first, as numbers (``analyze``), a Markdown report with plots (``write_report``) and the
``offrl datasets analyze`` command (``main``).

TQ  = (mean episode return - ref_min_score) / (ref_max_score - ref_min_score).
SACo = u(D) / u(reference), u = distinct (state, action) pairs after binning every dimension with
``np.digitize(x, np.linspace(lo, hi, bins))`` on the reference's per-dimension range, counted on the
first ``subset`` transitions of each dataset (the paper's D4RL protocol: 5 edges, 100,000 transitions,
medium-replay as reference). lSACo = log u(D) / log u(reference).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from offrl.core.checkpoint import write_atomic, write_text
from offrl.core.errors import DatasetError
from offrl.core.spec import ACHIEVED_KEY, GOAL_KEY
from offrl.data.arrays import OfflineData
from offrl.data.goals import goal_statistics, goal_threshold
from offrl.generation.generate import split_name
from offrl.generation.recipes import cached_path, dataset_names

if TYPE_CHECKING:
    pass

SATURATION = 0.99  # |a| at or above this counts as a saturated action entry (actions in [-1, 1])
SATURATED_GRID = 0.95  # distinct fraction of binned pairs above which SACo mostly measures dataset size
HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
HASH_SEED = 0xCBF29CE484222325


# ---------------------------------------------------------------------- SACo reference
def default_reference(names: list[str]) -> str:
    """``<family>-medium-replay`` (the paper's choice) when every name is a generated dataset of one family
    and that dataset is among the names or already built (building it re-runs a SAC training), else the
    first name."""
    families = set()
    for name in names:
        try:
            families.add(split_name(name)[0])
        except DatasetError:
            return names[0]
    if len(families) == 1:
        candidate = f"{families.pop()}-medium-replay"
        if candidate in names or (candidate in dataset_names() and cached_path(candidate).exists()):
            return candidate
    return names[0]


# ---------------------------------------------------------------------- counting
def _key_bits(column: np.ndarray) -> np.ndarray:
    """Integer bit pattern of a 1-D column, equal exactly when the values are equal (-0.0 becomes 0.0)."""
    if np.issubdtype(column.dtype, np.floating):
        column = column + column.dtype.type(0)  # -0.0 + 0.0 == +0.0, and a contiguous copy
        column = column.view(f"u{column.dtype.itemsize}")
    return column.astype(np.uint64)


def _columns(blocks: Sequence[np.ndarray]):
    for block in blocks:
        if block.ndim == 1:
            yield block
        else:
            yield from block.T


def count_distinct_rows(blocks: Sequence[np.ndarray]) -> int:
    """Exact number of distinct rows of the column-wise concatenation of ``blocks`` ((N,) or (N, d)
    arrays with equal N), without building it: rows are hashed to 64 bits column by column and sorted;
    rows sharing a hash are compared in full, and a true hash collision falls back to ``np.unique``."""
    n = len(blocks[0])
    if n < 2:
        return n
    keys = np.full(n, HASH_SEED, dtype=np.uint64)
    for column in _columns(blocks):
        keys ^= _key_bits(column)
        keys *= HASH_MULTIPLIER
        keys ^= keys >> np.uint64(29)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    tied = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    first, second = order[tied], order[tied + 1]
    if all(np.array_equal(block[first], block[second]) for block in blocks):
        return n - len(tied)
    rows = np.stack([_key_bits(column) for column in _columns(blocks)], axis=1)
    return len(np.unique(rows, axis=0))


def discretize(blocks: Sequence[np.ndarray], low: np.ndarray, high: np.ndarray, bins: int) -> np.ndarray:
    """(N, d) bin indices of the concatenated columns: ``np.digitize(x, np.linspace(lo, hi, bins))`` per
    dimension, so values below ``lo`` land in bin 0 and values at or above ``hi`` in bin ``bins``."""
    columns = list(_columns(blocks))
    dtype = np.uint8 if bins < 256 else np.uint16
    codes = np.empty((len(columns[0]), len(columns)), dtype=dtype)
    for j, column in enumerate(columns):
        codes[:, j] = np.digitize(column, np.linspace(low[j], high[j], bins))
    return codes


def _state_actions(data: OfflineData, subset: int | None) -> tuple[np.ndarray, np.ndarray]:
    rows = len(data) if subset is None else min(subset, len(data))
    return data.observations[:rows], data.actions[:rows]


def _range(blocks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    low = np.concatenate([block.min(axis=0) for block in blocks]).astype(np.float64)
    high = np.concatenate([block.max(axis=0) for block in blocks]).astype(np.float64)
    return low, high


# ---------------------------------------------------------------------- analysis
def _stats(values: np.ndarray, std: bool = True) -> dict[str, float]:
    values = values.astype(np.float64)
    out = {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}
    if std:
        out["std"] = float(values.std())
    return out


def _coverage(array: np.ndarray) -> dict[str, list[float]]:
    return {"min": array.min(axis=0).tolist(), "max": array.max(axis=0).tolist(),
            "std": array.std(axis=0, dtype=np.float64).tolist()}


def analyze(data: OfflineData, reference: OfflineData | None = None, bins: int = 5,
            subset: int | None = 100_000) -> dict[str, Any]:
    """Quality numbers of one dataset (JSON-ready): TQ, SACo/lSACo against ``reference`` (default: the
    dataset itself) on the first ``subset`` transitions (None: all) with ``bins`` edges per dimension,
    episode, reward, action and coverage statistics, and exact duplicate transitions."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if subset is not None and subset < 1:
        raise ValueError(f"subset must be >= 1 or None, got {subset}")
    info = data.info
    reference = data if reference is None else reference
    if (reference.obs_dim, reference.act_dim) != (data.obs_dim, data.act_dim):
        raise DatasetError(
            f"{info.location}: (state, action) dims ({data.obs_dim}, {data.act_dim}) differ from those of the "
            f"SACo reference {reference.info.location} ({reference.obs_dim}, {reference.act_dim})"
        )
    notes: list[str] = []

    bounds = data.episode_bounds()
    returns = data.episode_returns()
    lengths = bounds[:, 1] - bounds[:, 0]
    mean_return = float(returns.mean())
    ref_min, ref_max = info.ref_min_score, info.ref_max_score
    tq = None
    if ref_min is None or ref_max is None:
        notes.append("no reference returns (ref_min_score / ref_max_score): TQ is not available")
    elif ref_max == ref_min:
        notes.append(f"ref_min_score == ref_max_score == {ref_min}: TQ is not defined")
    else:
        tq = (mean_return - ref_min) / (ref_max - ref_min)

    reference_blocks = _state_actions(reference, subset)
    low, high = _range(reference_blocks)
    reference_unique = count_distinct_rows([discretize(reference_blocks, low, high, bins)])
    if reference is data:
        blocks, unique = reference_blocks, reference_unique
    else:
        blocks = _state_actions(data, subset)
        unique = count_distinct_rows([discretize(blocks, low, high, bins)])
    binned, reference_binned = len(blocks[0]), len(reference_blocks[0])
    log_saco = math.log(unique) / math.log(reference_unique) if reference_unique > 1 else None
    if binned != reference_binned:
        notes.append(f"SACo compares {binned} transitions with {reference_binned} of the reference; the paper "
                     "compares equal-size subsets (SACo grows with dataset size)")
    if unique / binned > SATURATED_GRID and binned > 1:
        notes.append(f"{unique / binned:.0%} of the binned (s, a) pairs are distinct: the grid is saturated and "
                     "SACo mostly measures dataset size; try fewer bins")

    saturated = np.abs(data.actions) >= SATURATION
    action_extent = float(np.abs(data.actions).max())
    if action_extent > 1.0 + 1e-6:
        notes.append(f"actions reach |a| = {action_extent:.3g}, outside [-1, 1]: the saturation count assumes "
                     "actions scaled to [-1, 1]")
    distinct = count_distinct_rows([data.observations, data.actions, data.rewards, data.next_observations])
    n = len(data)
    spec, goals = info.obs_spec, None
    if spec is not None and GOAL_KEY in spec.keys and ACHIEVED_KEY in spec.keys:
        goals = goal_statistics(data.observations, data.next_observations, data.episode_ends, spec,
                                goal_threshold(info))
    terminal_ends = int((data.terminals & data.episode_ends).sum())
    episode_ends = int(data.episode_ends.sum())
    return {
        "name": info.name,
        "source": info.source,
        "location": info.location,
        "env_id": info.env_id,
        "transitions": n,
        "obs_dim": data.obs_dim,
        "act_dim": data.act_dim,
        "episodes": {"count": len(bounds), "length": _stats(lengths, std=False), "return": _stats(returns)},
        # timeouts: episode ends without a termination (a time limit, or the end of the data); success terminals:
        # terminals inside an episode (the task solved while the episode goes on)
        "episode_ends": {"count": episode_ends, "terminals": terminal_ends, "timeouts": episode_ends - terminal_ends,
                         "success_terminals": int((data.terminals & ~data.episode_ends).sum())},
        "rewards": _stats(data.rewards),
        "tq": {"value": tq, "mean_return": mean_return, "ref_min_score": ref_min, "ref_max_score": ref_max},
        "saco": {
            "value": unique / reference_unique,
            "log_value": log_saco,
            "unique": unique,
            "reference_unique": reference_unique,
            "unique_fraction": unique / binned,
            "binned": binned,
            "reference_binned": reference_binned,
            "reference": reference.info.name,
            "bins": bins,
            "subset": subset,
        },
        "actions": {
            "saturation_threshold": SATURATION,
            "saturated_fraction": float(saturated.mean()),
            "saturated_fraction_per_dim": saturated.mean(axis=0).tolist(),
        },
        "coverage": {"observations": _coverage(data.observations), "actions": _coverage(data.actions)},
        "duplicates": {"count": n - distinct, "fraction": (n - distinct) / n},
        "goals": goals,  # None without desired and achieved goal keys
        "recorded_success": info.extra.get("oracle_success"),  # the generator's own success record (OGBench)
        "non_finite": {"count": 0, "checked": "at load: the readers reject NaN/inf"},
        "notes": notes,
    }


# ---------------------------------------------------------------------- report
def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _file_stems(names: list[str]) -> list[str]:
    stems: list[str] = []
    for index, name in enumerate(names):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"
        stems.append(f"{stem}-{index + 1}" if stem in stems else stem)
    return stems


def _save(figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    write_atomic(path, lambda handle: figure.savefig(handle, format=path.suffix[1:], dpi=100), "figure")


# Okabe & Ito's colour-blind-safe palette
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _plot_dataset(result: dict[str, Any], data: OfflineData, out_dir: Path, stem: str) -> dict[str, str]:
    from matplotlib.figure import Figure

    name = result["name"]
    files = {"returns": f"{stem}-returns.png", "lengths": f"{stem}-lengths.png", "actions": f"{stem}-actions.png"}

    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    axes.hist(data.episode_returns(), bins=40, color=PALETTE[0])
    for label, score, color in (("random", result["tq"]["ref_min_score"], PALETTE[3]),
                                ("expert", result["tq"]["ref_max_score"], PALETTE[2])):
        if score is not None:
            axes.axvline(score, color=color, linestyle="--", label=f"{label} reference {score:.1f}")
    if axes.get_legend_handles_labels()[0]:
        axes.set_ylim(top=axes.get_ylim()[1] * 1.3)  # headroom: the legend sits above the bars, not on them
        axes.legend(fontsize="small", loc="upper center", ncols=2)
    axes.set(title=f"{name}: episode returns", xlabel="undiscounted return", ylabel="episodes")
    _save(figure, out_dir / files["returns"])

    bounds = data.episode_bounds()
    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    axes.hist(bounds[:, 1] - bounds[:, 0], bins=40, color=PALETTE[1])
    axes.set(title=f"{name}: episode lengths", xlabel="episode length (transitions)", ylabel="episodes")
    _save(figure, out_dir / files["lengths"])

    columns = min(data.act_dim, 4)
    rows = math.ceil(data.act_dim / columns)
    figure = Figure(figsize=(3.2 * columns, 2.7 * rows), layout="constrained")
    for dim in range(data.act_dim):
        axes = figure.add_subplot(rows, columns, dim + 1)
        axes.hist(data.actions[:, dim], bins=50, color=PALETTE[4])
        axes.set_title(f"action {dim}", fontsize="small")
        axes.set_xlabel("action (env bounds mapped to [-1, 1])", fontsize="x-small")
        if dim % columns == 0:
            axes.set_ylabel("transitions", fontsize="small")
        axes.tick_params(labelsize="x-small")
    figure.suptitle(f"{name}: actions")
    _save(figure, out_dir / files["actions"])

    spec = data.info.obs_spec
    if result.get("goals") is not None and spec.slice(ACHIEVED_KEY).stop - spec.slice(ACHIEVED_KEY).start >= 2:
        files["goals"] = f"{stem}-goals.png"
        achieved = data.next_observations[:, spec.slice(ACHIEVED_KEY)][:, :2]
        desired = data.observations[:, spec.slice(GOAL_KEY)][:, :2]
        both = np.concatenate([achieved, desired])
        edges = [np.linspace(both[:, d].min(), both[:, d].max(), 61) for d in range(2)]
        figure = Figure(figsize=(10, 4.4), layout="constrained")
        for column, (values, what) in enumerate(((achieved, "achieved goals (where the data went)"),
                                                 (desired, "desired goals (what the data was asked)"))):
            axes = figure.add_subplot(1, 2, column + 1)
            *_, image = axes.hist2d(values[:, 0], values[:, 1], bins=edges, cmin=1, cmap="cividis")
            figure.colorbar(image, ax=axes, label="transitions per bin")
            axes.set(title=what, xlabel="goal dim 0", ylabel="goal dim 1")
            axes.set_aspect("equal")
        figure.suptitle(f"{name}: goals")
        _save(figure, out_dir / files["goals"])
    return files


def _plot_tq_saco(results: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    tqs = [result["tq"]["value"] for result in results]
    sacos = [result["saco"]["value"] for result in results]
    for k, (result, tq, saco) in enumerate(zip(results, tqs, sacos)):  # a legend, not labels that collide
        axes.scatter(tq, saco, color=PALETTE[k % len(PALETTE)], marker=MARKERS[k % len(MARKERS)], s=50,
                     label=result["name"])
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    # the paper's frame: TQ from random (0) to expert (1), SACo from 0 to the reference (1), widened to fit
    axes.set_xlim(min(0.0, *tqs) - 0.05, max(1.0, *tqs) + 0.1)
    axes.set_ylim(0.0, max(1.0, *sacos) * 1.1)
    references = sorted({result["saco"]["reference"] for result in results})
    axes.set(xlabel="TQ (normalised mean episode return)",
             ylabel=f"SACo (relative to {', '.join(references)})", title="Dataset quality: TQ vs SACo")
    axes.grid(alpha=0.3)
    _save(figure, path)


def _is_numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell in ("", "n/a", "all")
    return True


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; columns holding only numbers are right-aligned."""
    rule = ["---:" if all(_is_numeric(row[i]) for row in rows) else "---" for i in range(len(header))]
    return ["| " + " | ".join(line) + " |" for line in (header, rule, *rows)]


def _goal_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    goals = result.get("goals")
    if goals is not None:
        lines.append(f"- Goals (desired and achieved goal keys; reached = within {goals['threshold']:g} of the desired "
                     f"goal): the data reaches a goal in {goals['episode_success_rate']:.1%} of its "
                     f"{goals['episodes']} episodes ({goals['goals_reached_per_episode']:.2f} goals per episode, "
                     f"{goals['steps_at_goal_fraction']:.1%} of steps at a goal). Goal coverage on "
                     f"{goals['threshold']:g}-wide cells: {goals['desired_goal_cells']} cells hold desired goals, "
                     f"{goals['achieved_goal_cells']} achieved goals; {goals['desired_cells_reached_fraction']:.1%} "
                     "of the desired-goal cells are visited by the data.")
    recorded = result.get("recorded_success")
    if isinstance(recorded, dict):  # its scalar entries (rates, counts) and the criterion they follow
        shown = ", ".join(f"{key} {_fmt(value) if isinstance(value, float) else value}"
                          for key, value in recorded.items()
                          if isinstance(value, (int, float)) and not isinstance(value, bool))
        criterion = f" ({recorded['criterion']})" if isinstance(recorded.get("criterion"), str) else ""
        lines.append(f"- Success recorded by the generator: {shown or 'no rates'}{criterion}.")
    return lines


def _dataset_section(result: dict[str, Any], files: dict[str, str]) -> list[str]:
    episodes, ends, saco, tq = result["episodes"], result["episode_ends"], result["saco"], result["tq"]
    length, returns, rewards = episodes["length"], episodes["return"], result["rewards"]
    saturation = result["actions"]
    lines = [f"## {result['name']}", "",
             f"Source: {result['source']} `{result['location']}`; evaluation env: {result['env_id'] or 'none'}; "
             f"{result['transitions']} transitions, state dim {result['obs_dim']}, action dim {result['act_dim']}.",
             ""]
    lines += _table(["quantity", "min", "mean", "max", "std"], [
        ["episode length", str(int(length["min"])), _fmt(length["mean"], 1), str(int(length["max"])), ""],
        ["episode return", *(_fmt(returns[k], 2) for k in ("min", "mean", "max", "std"))],
        ["reward", *(_fmt(rewards[k], 3) for k in ("min", "mean", "max", "std"))],
    ])
    lines += ["",
              f"- Episodes: {episodes['count']}; episode ends: {ends['terminals']} terminals, {ends['timeouts']} "
              "timeouts (ends without termination: time limit or end of data); "
              f"{ends['success_terminals']} success terminals inside episodes.",
              f"- TQ: {_fmt(tq['value'])} (mean return {_fmt(tq['mean_return'], 2)}, reference returns "
              f"random {_fmt(tq['ref_min_score'], 2)} / expert {_fmt(tq['ref_max_score'], 2)}).",
              f"- SACo: {_fmt(saco['value'])}, lSACo: {_fmt(saco['log_value'])} ({saco['unique']} distinct binned "
              f"(s, a) pairs in {saco['binned']} transitions, {saco['unique_fraction']:.1%} distinct; reference "
              f"{saco['reference']}: {saco['reference_unique']} in {saco['reference_binned']}; {saco['bins']} edges "
              "per dimension).",
              f"- Action saturation (|a| >= {saturation['saturation_threshold']}): "
              f"{saturation['saturated_fraction']:.2%} of entries; per dimension "
              + ", ".join(f"{x:.1%}" for x in saturation["saturated_fraction_per_dim"]) + ".",
              f"- Exact duplicate transitions (s, a, r, s'): {result['duplicates']['count']} "
              f"({result['duplicates']['fraction']:.2%}).",
              f"- NaN/inf values: {result['non_finite']['count']} (checked {result['non_finite']['checked']}).",
              *_goal_lines(result), ""]
    lines += [f"Note: {note}." for note in result["notes"]] + ([""] if result["notes"] else [])
    lines += [f"![returns]({files['returns']}) ![lengths]({files['lengths']})", "", f"![actions]({files['actions']})",
              ""]
    if "goals" in files:
        lines += [f"![goals]({files['goals']})", ""]
    for part in ("observations", "actions"):
        coverage = result["coverage"][part]
        lines += [f"Coverage of {part}:", ""]
        lines += _table(["dim", "min", "max", "std"], [
            [str(dim), _fmt(low), _fmt(high), _fmt(std)]
            for dim, (low, high, std) in enumerate(zip(coverage["min"], coverage["max"], coverage["std"]))
        ])
        lines.append("")
    return lines


def write_report(results: list[dict[str, Any]], datasets: list[OfflineData], out_dir: Path) -> None:
    """Write ``analysis.json`` (every number), ``report.md`` and its PNG plots into ``out_dir``: per
    dataset return, episode-length and action histograms, and a TQ-vs-SACo scatter for several datasets."""
    if len(results) != len(datasets):
        raise ValueError(f"{len(results)} results for {len(datasets)} datasets")
    out_dir = Path(out_dir)
    write_text(out_dir / "analysis.json", json.dumps({"datasets": results}, indent=2) + "\n", "analysis")

    stems = _file_stems([result["name"] for result in results])
    files = [_plot_dataset(result, data, out_dir, stem) for result, data, stem in zip(results, datasets, stems)]
    lines = ["# Dataset quality report", "",
             "TQ: normalised mean episode return, (R - R_random) / (R_expert - R_random). SACo: distinct binned "
             "(state, action) pairs relative to the reference dataset; lSACo: the same on a log scale "
             "(Schweighofer et al., 2022). SACo is comparable only between equal-size subsets binned on the same "
             "reference.", ""]
    lines += _table(["name", "transitions", "episodes", "TQ", "SACo", "lSACo", "SACo reference", "bins", "subset"], [
        [r["name"], str(r["transitions"]), str(r["episodes"]["count"]), _fmt(r["tq"]["value"]),
         _fmt(r["saco"]["value"]), _fmt(r["saco"]["log_value"]), r["saco"]["reference"], str(r["saco"]["bins"]),
         "all" if r["saco"]["subset"] is None else str(r["saco"]["subset"])] for r in results
    ])
    lines.append("")
    if len(results) > 1:
        plotted = [result for result in results if result["tq"]["value"] is not None]
        if plotted:
            _plot_tq_saco(plotted, out_dir / "tq-vs-saco.png")
            lines += ["![TQ vs SACo](tq-vs-saco.png)", ""]
        missing = [result["name"] for result in results if result["tq"]["value"] is None]
        if missing:
            lines += [f"Not in the TQ-vs-SACo plot (no reference returns): {', '.join(missing)}.", ""]
    for result, dataset_files in zip(results, files):
        lines += _dataset_section(result, dataset_files)
    write_text(out_dir / "report.md", "\n".join(lines), "analysis report")
