"""Write the documentation's result tables, and the README's table at a glance, from the committed run records.

    python benchmarks/make_tables.py [--archive] [--only EXPERIMENT ...] [--reps 2000]   # reports, then pages
    python benchmarks/make_tables.py --pages-only                                           # pages from the reports

Three stages:

1. ``--archive``: run directories (checkpoints, TensorBoard) live under ``benchmarks/runs/`` and are not committed.
   What a report needs of a run, its ``results.json`` (final scores, evaluation history, CPU) and ``config.yaml``,
   is copied to the same relative path under ``benchmarks/records/``, with the run's ``train/*`` TensorBoard scalars
   as ``scalars.json`` (the diagnostics columns of the O-DICE ablation come from them). The records are committed.
2. Reports (skipped with ``--pages-only``): ``offrl report`` on each experiment's records (``EXPERIMENTS``) into
   ``benchmarks/results/reports/<experiment>/`` (report.md, report.json, figures); the figures the documentation
   shows are copied to ``docs/results/figures/``. ``--only`` limits this stage to some experiments.
3. Pages, always all of them, from the reports' ``report.json``, the records and the result files named in
   ``RESULT_FILES``: ``docs/results/_tables/<table>.md`` (each table with its caption: when, on what machine, at
   what budget), ``docs/algorithms/_results/<agent>.md`` for every agent of the registry and for ``pgd`` (that
   agent's rows, the budget beside every number), and the README's table at a glance between the markers
   ``<!-- results:start -->`` and ``<!-- results:end -->``. The documentation's pages include the fragments
   (``--8<--``); nothing here writes prose.

``tests/test_docs.py`` runs stage 3 into a temporary directory and compares it with the committed files, and checks
that each committed report.json was made from the records as they are, so the pages cannot drift from the records.

The TQ column of the offline table comes from the ``analysis.json`` files under
``benchmarks/results/dataset_analysis/`` (``offrl datasets analyze``): each row shows the TQ of the build its runs
trained on, told apart by the transition and episode counts their results.json records (a dataset rebuilt since its
family's analysis, e.g. a medium-replay set whose SAC run was repeated on another CPU, is analysed again in a
directory of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from offrl.agents import AGENTS
from offrl.cli import report as offrl_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
NAMES = {"bc": "BC", "td3bc": "TD3+BC", "prdc": "PRDC", "a2pr": "A2PR", "odice": "O-DICE", "iql": "IQL",
         "rebrac": "ReBRAC", "cql": "CQL", "fql": "FQL", "sac": "SAC", "pmoe": "PMOE", "expo": "EXPO",
         "calql": "Cal-QL"}
FAMILIES = ("hopper", "halfcheetah", "walker2d")
# experiment -> the summary of its runs made before records were kept (their runs are gone): rows of agent,
# dataset, mean, std (and n); they fill, marked with a dagger, the cells the records do not have yet
PRE_RECORDS: dict[str, Path] = {}  # none left: every table's cells have been re-run with records
QUALITIES = ("random", "medium", "medium-replay", "medium-expert", "expert")
PAPER_BUDGET = 1_000_000  # the papers' (and OGBench's) budget: 1M gradient steps offline, 1M env steps online
GLANCE = "glance"  # the table at a glance (README and docs/results/index.md)


def dataset_order(name: str) -> tuple[int, int, str]:
    family, _, quality = name.partition("-")
    return (FAMILIES.index(family) if family in FAMILIES else len(FAMILIES),
            QUALITIES.index(quality) if quality in QUALITIES else len(QUALITIES), name)


Build = tuple[int, int]  # a dataset build: (transitions, episodes)


def task_quality(analysis_dir: Path) -> dict[str, dict[Build, float]]:
    """TQ of every analysed build: dataset name -> {(transitions, episodes): TQ}. Counts cannot tell apart two
    builds of equal size (halfcheetah-medium-replay's 40 episodes): there the later directory in name order wins,
    so a dated re-analysis (``<name>-YYYY-MM-DD/``) supersedes its family's."""
    found: dict[str, dict[Build, float]] = {}
    for path in sorted(analysis_dir.glob("*/analysis.json")):
        for entry in json.loads(path.read_text()).get("datasets", []):
            if entry.get("tq", {}).get("value") is not None:
                build = (entry["transitions"], entry["episodes"]["count"])
                found.setdefault(entry["name"], {})[build] = entry["tq"]["value"]
    return found


def quality_table(analysis_dir: Path) -> str:
    """| quality | hopper TQ | hopper SACo | ... |: each family's analysis (``offrl datasets analyze`` of its five
    datasets together, ``<analysis_dir>/<family>/analysis.json``), the random set at its 100k build."""
    columns = [f"{family} {what}" for family in FAMILIES for what in ("TQ", "SACo")]
    lines = ["| quality | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    entries = {}
    for family in FAMILIES:
        for entry in json.loads((analysis_dir / family / "analysis.json").read_text())["datasets"]:
            entries[entry["name"].removesuffix("-100000")] = entry
    for quality in QUALITIES:
        cells = []
        for family in FAMILIES:
            entry = entries.get(f"{family}-{quality}", {})
            cells += [f"{entry[key]['value']:.3f}".replace("-0.000", "0.000") if entry.get(key) else ""
                      for key in ("tq", "saco")]
        label = quality + (" (100k)" if quality == "random" else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def statistics_table(analysis_dir: Path) -> str:
    """| dataset | build | transitions | episodes | mean length | mean return | TQ | SACo |: every analysed build of
    every family (``<analysis_dir>/<family>*/analysis.json``: the family analyses, then the dated re-analyses of
    rebuilt sets: build "rebuild"), in dataset order; SACo relative to the family's medium-replay."""
    lines = ["| dataset | build | transitions | episodes | mean length | mean return | TQ | SACo |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    rows = []
    for path in sorted(analysis_dir.glob("*/analysis.json")):
        family, _, rest = path.parent.name.partition("-")
        if family not in FAMILIES:
            continue
        build = "rebuild" if rest else "family"
        for e in json.loads(path.read_text())["datasets"]:
            saco = e.get("saco") or {}
            assert not saco or saco["reference"] == f"{family}-medium-replay", path
            rows.append((dataset_order(e["name"].removesuffix("-100000")), path.parent.name,
                         f"| {e['name']} | {build} | {e['transitions']:,} | {e['episodes']['count']:,} | "
                         f"{e['episodes']['length']['mean']:.0f} | {e['episodes']['return']['mean']:.0f} | "
                         f"{e['tq']['value']:.3f} | " + (f"{saco['value']:.3f}" if saco else "") + " |"))
    lines += [row for *_, row in sorted(rows)]
    return "\n".join(lines).replace("| -0.000 |", "| 0.000 |")


def dynamics_table(path: Path) -> str:
    """| guidance coef | agent log-likelihood ... |: ``offrl diffusion dynamics``'s dynamics.json, one row per
    guidance coefficient."""
    lines = ["| guidance coef | agent log-likelihood of the actions | next-obs MSE | relative to obs variance | "
             "reward abs error |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['guidance_coef']:g} | {r['agent_log_prob']:.2f} | {r['next_obs_mse']:.3g} | "
              f"{r['next_obs_mse_relative']:.3f} | {r['reward_abs_error']:.3f} |"
              for r in json.loads(path.read_text())["rows"]]
    return "\n".join(lines)


def _run_path(run: str | Path) -> Path:
    """A run path of a report: relative ones (the reports written here) are relative to the repository."""
    path = Path(run)
    return path if path.is_absolute() else ROOT / path


def _builds(report: dict) -> dict[str, set[Build]]:
    """dataset -> the builds the report's runs trained on (from each run's results.json)."""
    builds: dict[str, set[Build]] = {}
    for group in report["groups"]:
        for run in group["runs"]:
            data = json.loads((_run_path(run) / "results.json").read_text()).get("data") or {}
            if "transitions" in data and "episodes" in data:
                builds.setdefault(group["dataset"], set()).add((data["transitions"], data["episodes"]))
    return builds


def _tq_cell(analysed: dict[Build, float], used: set[Build]) -> str:
    """The TQ of the builds a row's runs used ('a / b' if they used several); with no build recorded, the
    dataset's only analysed build; empty where a build was not analysed."""
    if not used:
        used = set(analysed) if len(analysed) == 1 else set()
    if not used or not used <= set(analysed):
        return ""
    return " / ".join(f"{analysed[b]:.2f}" for b in sorted(used))


def _cell(group: dict | None) -> str:
    if group is None or not group["n"]:
        return ""
    return f"{group['mean']['point']:.1f} +- {group['std']:.1f}"


def _cells(report: dict, pre_records: list[dict], cell) -> dict[tuple[str, str], str]:
    """(agent, dataset) -> table cell: from the records' report where it has the group, else from the
    pre-records rows, marked with a dagger. ``cell(mean, std, n)`` formats one."""
    cells = {(r["agent"], r["dataset"]): cell(r["mean"], r["std"], r.get("n")) + " \u2020" for r in pre_records}
    cells.update({(g["agent"], g["dataset"]): cell(g["mean"]["point"], g["std"], g["n"])
                  for g in report["groups"] if g["n"]})
    return cells


def _agents(cells: dict[tuple[str, str], str]) -> list[str]:
    found = {agent for agent, _ in cells}
    return [a for a in NAMES if a in found] + sorted(found - set(NAMES))


def _score_cell(mean: float, std: float, n: int | None) -> str:
    """A normalized score over seeds 0-2; the number of seeds where a cell has another."""
    return f"{mean:.1f} +- {std:.1f}" + ("" if n in (3, None) else f" (n={n})")


def offline_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| dataset | TQ | BC | TD3+BC | ... |: final normalized score, mean +- std over seeds 0-2 (the number of
    seeds where a cell has another)."""
    cells = _cells(report, pre_records, _score_cell)
    agents = _agents(cells)
    lines = ["| dataset | TQ | " + " | ".join(NAMES.get(a, a) for a in agents) + " |",
             "|---|---:|" + "---:|" * len(agents)]
    builds = _builds(report)
    for d in sorted({d for _, d in cells}, key=dataset_order):
        quality = _tq_cell(tq.get(d, {}), builds.get(d, set()))
        lines.append(f"| {d} | {quality} | " + " | ".join(cells.get((a, d), "") for a in agents) + " |")
    return "\n".join(lines)


def online_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| task | SAC return | PMOE return ... | SAC wall s (updates/s) | ... |."""
    agents = report["agents"]
    groups = {(g["agent"], g["dataset"]): g for g in report["groups"]}
    header = [f"{NAMES.get(a, a)} return" + (" (K = 4, frequency estimator)" if a == "pmoe" else "") for a in agents]
    header += [f"{NAMES.get(a, a)} wall s (updates/s)" for a in agents]
    lines = ["| task | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    order = {"Hopper-v5": 0, "HalfCheetah-v5": 1}
    for d in sorted(report["datasets"], key=lambda d: (order.get(d, len(order)), d)):
        cells = [_cell(groups.get((a, d))) for a in agents]
        for a in agents:
            g = groups.get((a, d))
            cost = "" if g is None or g["wall_s"] is None else f"{g['wall_s']:.0f}"
            if cost and g["updates_per_s"] is not None:
                cost += f" ({g['updates_per_s']:.0f})"
            cells.append(cost)
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def success_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| dataset | BC success rate | ... |: final success rate, mean +- std over seeds (n seeds)."""
    cells = _cells(report, pre_records, lambda mean, std, n: f"{mean:.2f} +- {std:.2f} (n={n})")
    agents = _agents(cells)
    lines = ["| dataset (success rate) | " + " | ".join(NAMES.get(a, a) for a in agents) + " |",
             "|---|" + "---:|" * len(agents)]
    for d in sorted({d for _, d in cells}):
        lines.append(f"| {d} | " + " | ".join(cells.get((a, d), "") for a in agents) + " |")
    return "\n".join(lines)


def _synthetic_column(label: str) -> str:
    """real / unguided / guided (c): the column of a ``--by synthetic.model,[...,]synthetic.guidance_coef`` label."""
    values = label.rstrip("]").split("[")[1].split(",")
    model, coef = values[0], values[-1]
    return "real" if model == "?" else "unguided" if float(coef) == 0 else f"guided ({float(coef):g})"


def synthetic_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| dataset | agent | real data | + unguided synthetic | + policy-guided synthetic |: final normalized score,
    mean +- std over seeds (n), from the labels of ``--by synthetic.model,synthetic.guidance_coef``; cells the
    records lack from the pre-records rows, marked with a dagger."""
    def place(label: str, dataset: str) -> tuple[str, str, str]:
        return dataset, label.split("[")[0], _synthetic_column(label)

    cells = {place(r["agent"], r["dataset"]): f"{r['mean']:.1f} +- {r['std']:.1f} (n={r['n']}) \u2020"
             for r in pre_records}
    cells.update({place(g["agent"], g["dataset"]): f"{g['mean']['point']:.1f} +- {g['std']:.1f} (n={g['n']})"
                  for g in report["groups"] if g["n"]})
    columns = ["real", "unguided"] + sorted({c for *_, c in cells} - {"real", "unguided"})
    rows = sorted({(d, a) for d, a, _ in cells}, key=lambda r: (dataset_order(r[0]), list(NAMES).index(r[1])))
    lines = ["| dataset (normalized score) | agent | " + " | ".join(
        {"real": "real data only", "unguided": "+ unguided synthetic"}.get(c, f"+ {c} synthetic") for c in columns)
        + " |", "|---|---|" + "---:|" * len(columns)]
    lines += [f"| {d} | {NAMES.get(a, a)} | " + " | ".join(cells.get((d, a, c), "") for c in columns) + " |"
              for d, a in rows]
    return "\n".join(lines)


def table_size_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| agent (dataset, normalized score) | real data | + unguided | + guided |, one row per synthetic table size,
    from the labels of ``--by synthetic.model,synthetic.num_trajectories,synthetic.guidance_coef``: mean +- std over
    seeds (n). A table size of ? is the model preset's (``synthetic_trajectories``: 128 for preset=cpu)."""
    cells: dict[tuple[str, str], str] = {}
    for g in report["groups"]:
        agent, (model, size, coef) = g["agent"].split("[")[0], g["agent"].rstrip("]").split("[")[1].split(",")
        row = f"{agent}, {g['dataset']}, " + ("real data only" if model == "?" else
                                               f"tables of {'128 (the preset)' if size == '?' else size} trajectories")
        column = "real" if model == "?" else "unguided" if float(coef) == 0 else "guided"
        cells[row, column] = f"{g['mean']['point']:.1f} +- {g['std']:.1f} (n={g['n']})"
    rows = sorted({r for r, _ in cells}, key=lambda r: (not r.endswith("only"), r))
    lines = ["| runs | real data | + unguided synthetic | + guided synthetic |", "|---|---:|---:|---:|"]
    lines += [f"| {r} | " + " | ".join(cells.get((r, c), "") for c in ("real", "unguided", "guided")) + " |"
              for r in rows]
    return "\n".join(lines)


def precision_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| agent, dataset / env | fp32 | bf16 |: the final score of the same runs in each precision, from the labels of
    ``--by precision``: mean +- std over seeds (n)."""
    cells: dict[tuple[str, str], str] = {}
    for g in report["groups"]:
        agent, precision = g["agent"].rstrip("]").split("[")
        cells[f"{NAMES.get(agent, agent)}, {g['dataset']}", precision] = \
            f"{g['mean']['point']:.1f} +- {g['std']:.1f} (n={g['n']})"
    lines = ["| runs | fp32 | bf16 |", "|---|---:|---:|"]
    lines += [f"| {row} | {cells.get((row, 'fp32'), '')} | {cells.get((row, 'bf16'), '')} |"
              for row in sorted({r for r, _ in cells})]
    return "\n".join(lines)


EXPO_COLUMNS = {"expo[0.5]": "EXPO", "sac[0.5]": "SAC + offline data (RLPD-style)", "sac[0.0]": "SAC from scratch"}


def curve_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| <dataset> (<metric>), env steps | EXPO | SAC + offline data | SAC from scratch |: the learning curves,
    mean over seeds [95% CI] at each evaluation, from the labels of ``--by trainer.offline_fraction``."""
    (dataset,) = report["datasets"]
    curves = {c["agent"]: c for c in report["curves"]}
    columns = [label for label in EXPO_COLUMNS if label in curves]
    steps = sorted({x for c in curves.values() for x in c["x"]})
    digits = 2 if report["metric"] == "success_rate" else 1

    def cell(label: str, x: int) -> str:
        c = curves[label]
        if x not in c["x"]:
            return ""
        i = c["x"].index(x)
        return f"{c['mean'][i]:.{digits}f} [{c['low'][i]:.{digits}f}, {c['high'][i]:.{digits}f}] (n={c['runs']})"

    lines = [f"| {dataset} ({report['metric'].replace('_', ' ')}), env steps | "
             + " | ".join(EXPO_COLUMNS[label] for label in columns) + " |", "|---:|" + "---:|" * len(columns)]
    lines += [f"| {x} ({100 * x / PAPER_BUDGET:g}% of 1M) | " + " | ".join(cell(label, x) for label in columns) + " |"
              for x in steps]
    return "\n".join(lines)


def evaluations_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| agent | dataset | seeds | <metric> at each evaluation ... |: every evaluation of a report's learning curves
    (mean over the seeds at each step), for the longer runs whose curve is the result."""
    digits = 2 if report["metric"] == "success_rate" else 1
    curves = sorted(report["curves"], key=lambda c: (list(NAMES).index(c["agent"].split("[")[0])
                                                     if c["agent"].split("[")[0] in NAMES else 99, c["dataset"]))
    steps = sorted({x for c in curves for x in c["x"]})
    lines = ["| agent | dataset | seeds | " + " | ".join(
        (f"{x // 1000}k" if x % 1000 == 0 else str(x)) + f" ({100 * x / PAPER_BUDGET:g}%)" for x in steps)
        + " |", "|---|---|---:|" + "---:|" * len(steps)]
    for c in curves:
        cells = [f"{c['mean'][c['x'].index(x)]:.{digits}f}" if x in c["x"] else "" for x in steps]
        lines.append(f"| {NAMES.get(c['agent'], c['agent'])} | {c['dataset']} | {c['runs']} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


ODICE_MODES = {"orthogonal": "orthogonal (O-DICE)", "semi": "semi (forward only)", "true": "true (plain sum)"}
# O-DICE's diagnostics (train/* scalars): column -> tag, format
ODICE_DIAGNOSTICS = {"mean forward residual": ("train/forward_residual", "{:.2f}"),
                     "zero-weight share": ("train/weight_zero_fraction", "{:.0%}"), "mean V": ("train/v", "{:.1f}")}


def last_logged(record: Path, tag: str, count: int = 3) -> float | None:
    """The mean of the last ``count`` logged values of ``tag`` in a record's scalars.json (None: not there)."""
    path = record / "scalars.json"
    points = json.loads(path.read_text()).get(tag) if path.is_file() else None
    return sum(value for _, value in points[-count:]) / len(points[-count:]) if points else None


def ablation_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| update mode | normalized score | mean forward residual | zero-weight share | mean V |: O-DICE's update
    modes (labels of ``--by agent.update_mode``), score mean +- std over seeds; each diagnostic the mean over
    the seeds of each run's last three logged values (a cell stays empty unless every seed has them)."""
    scores = _cells(report, pre_records, _score_cell)
    (dataset,) = report["datasets"]
    runs: dict[str, list[Path]] = {}
    for run in report["runs"]:
        if run["status"] == "finished":
            runs.setdefault(run["agent"], []).append(_run_path(run["path"]))
    lines = ["| update mode | normalized score | " + " | ".join(ODICE_DIAGNOSTICS) + " |",
             "|---|---:|" + "---:|" * len(ODICE_DIAGNOSTICS)]
    for mode, name in ODICE_MODES.items():
        label = f"odice[{mode}]"
        cells = [scores.get((label, dataset), "")]
        for tag, form in ODICE_DIAGNOSTICS.values():
            values = [last_logged(path, tag) for path in runs.get(label, [])]
            cells.append(form.format(sum(values) / len(values)) if values and None not in values else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Experiment:
    """One experiment's records, how ``offrl report`` reads them, its table and what its caption says."""

    subdirs: tuple[str, ...]  # under benchmarks/records/
    options: tuple[str, ...]  # offrl report options
    table: object | None  # fn(report, tq, pre_records) -> Markdown table; None: curves only (evaluations_table)
    title: str  # the caption's first words
    date: str  # when the records were made (the records hold no date)
    budget: str  # what each run did, said once; the per-row budgets are computed from the records
    command: str  # how to re-run it
    page: str  # the results page showing it (docs/results/<page>.md)
    figures: tuple[str, ...] = ()  # report figures the documentation shows


EXPERIMENTS: dict[str, Experiment] = {
    "offline_table": Experiment(
        ("offline_table",), ("--metric", "normalized_score"), offline_table,
        "Offline agents on the generated D4RL-protocol datasets: final normalized score, mean +- std over seeds 0-2",
        "2026-12-03 to 2026-12-04",
        "10,000 gradient steps per run (1% of the papers' 1M), batch 256, 10 evaluation episodes at the end",
        "bash benchmarks/offline_table.sh", "offline"),
    "odice_ablation": Experiment(
        ("offline_table", "odice_ablation"), ("--by", "agent.update_mode", "--agents", "odice", "--datasets",
                                              "hopper-medium-replay"), ablation_table,
        "O-DICE's update modes on hopper-medium-replay: score mean +- std over seeds 0-2; diagnostics the mean over "
        "the seeds of the last three logged values (steps 8k-10k)",
        "2026-12-04", "10,000 gradient steps per run (1% of the paper's 1M), 10 evaluation episodes at the end",
        "bash benchmarks/offline_table.sh", "odice"),
    "long_hopper_mr": Experiment(
        ("long_hopper_mr",), ("--metric", "normalized_score"), None,
        "Longer runs on hopper-medium-replay (TQ 0.14 build): normalized score at each evaluation, seed 0",
        "2026-12-04",
        "50,000 gradient steps (O-DICE 25,000), 5% of the papers' 1M, 10 evaluation episodes every 10k (O-DICE 5k)",
        "bash benchmarks/long_hopper_mr.sh", "offline", ("learning_curves",)),
    "pmoe_vs_sac": Experiment(
        ("pmoe_vs_sac",), ("--metric", "return_mean"), online_table,
        "SAC and PMOE online: final return, mean +- std over seeds 0-2; wall time and updates/s per run",
        "2026-12-04",
        "30,000 environment steps (3% of the papers' 1M): 10k uniform warm-up, then one update per step; "
        "10 deterministic evaluation episodes at the end; two runs side by side",
        "bash benchmarks/pmoe_vs_sac.sh", "online", ("learning_curves",)),
    "expo_hopper": Experiment(
        ("expo",), ("--metric", "normalized_score", "--by", "trainer.offline_fraction", "--datasets",
                    "hopper-medium"), curve_table,
        "EXPO (agent=expo_cpu) against SAC with and without the offline data on hopper-medium: normalized score, "
        "mean over seeds [95% bootstrap interval]",
        "2026-12-05",
        "5,000 environment steps (0.5% of the paper's 1M), 1,000 uniform warm-up, UTD 2, 5 evaluation episodes "
        "every 1,000 steps", "bash benchmarks/expo_evidence.sh", "expo", ("learning_curves",)),
    "expo_pointmaze": Experiment(
        ("expo",), ("--metric", "success_rate", "--by", "trainer.offline_fraction", "--datasets", "pointmaze-umaze"),
        curve_table,
        "EXPO (agent=expo_cpu) against SAC with and without the offline data on pointmaze-umaze: success rate, "
        "mean over seeds [95% bootstrap interval]",
        "2026-12-05",
        "5,000 environment steps (0.5% of the paper's 1M), 1,000 uniform warm-up, UTD 2, 20 evaluation episodes "
        "every 1,000 steps", "bash benchmarks/expo_evidence.sh", "expo", ("learning_curves",)),
    "pgd": Experiment(
        ("pgd_agents",), ("--metric", "normalized_score", "--by", "synthetic.model,synthetic.guidance_coef"),
        synthetic_table,
        "Offline agents on real data only, and with unguided or policy-guided synthetic data: final normalized "
        "score, mean +- std over seeds 0-2",
        "2026-12-02 to 2026-12-05",
        "10,000 agent updates (1% of the paper's 1M), 15/16 of each batch synthetic, synthetic tables of 1,024 "
        "(hopper-medium) or 512 trajectories regenerated every 5,000 updates (the first unguided), CPU-preset "
        "trajectory model trained 12,000 steps; 10 evaluation episodes at the end",
        "bash benchmarks/pgd_agents.sh DATASET TRAJECTORIES AGENT", "pgd"),
    "pgd_table_size": Experiment(
        ("pgd_agents/hopper-medium", "pgd_cpu_table"),
        ("--metric", "normalized_score", "--agents", "td3bc", "--by",
         "synthetic.model,synthetic.num_trajectories,synthetic.guidance_coef"), table_size_table,
        "The CPU preset's synthetic table (128 trajectories) against the recorded 1,024: TD3+BC on hopper-medium, "
        "final normalized score, mean +- std over seeds 0-2",
        "2026-12-02 (1,024) and 2026-12-07 (128)",
        "10,000 agent updates (1% of the paper's 1M), 15/16 of each batch synthetic, tables regenerated every 5,000 "
        "updates (the first unguided), the same CPU-preset trajectory model recipe (12,000 steps); 10 evaluation "
        "episodes at the end", "bash benchmarks/pgd_cpu_table.sh hopper-medium", "pgd"),
    "robotics": Experiment(
        ("gc_pointmaze", "cube_single", "cube_double"), ("--metric", "success_rate"), success_table,
        "Goal-conditioned and manipulation tasks: final success rate, mean +- std over seeds",
        "2026-12-03 to 2026-12-05",
        "PointMaze medium: 20,000 updates (2% of 1M) on the 1M-step generated dataset with goal relabelling, 20 "
        "evaluation episodes; cube: 10,000 updates (1% of OGBench's 1M) on 300k-transition play builds, 10 "
        "evaluation episodes", "bash benchmarks/robotics.sh; bash benchmarks/cube_tasks.sh DATASET", "robotics"),
    "precision_td3bc": Experiment(
        ("precision_learning",), ("--metric", "normalized_score", "--agents", "td3bc", "--by", "precision"),
        precision_table,
        "Does bf16 change learning? TD3+BC on hopper-medium in fp32 and in bf16 (precision=bf16), compile=true: final "
        "normalized score, mean +- std over seeds 0-2",
        "2026-12-08", "30,000 updates (3% of the paper's 1M), batch 256, 10 evaluation episodes every 10,000",
        "bash benchmarks/precision_learning.sh td3bc", "speed"),
    "precision_sac": Experiment(
        ("precision_learning",), ("--metric", "return_mean", "--agents", "sac", "--by", "precision"), precision_table,
        "Does bf16 change learning? SAC on Hopper-v5 in fp32 and in bf16 (precision=bf16), compile=true: final return, "
        "mean +- std over seeds",
        "2026-12-08", "30,000 environment steps (3% of 1M), one update per step, 10 evaluation episodes every 10,000",
        "bash benchmarks/precision_learning.sh sac", "speed"),
    "cube_long": Experiment(
        ("cube_long",), ("--metric", "success_rate"), None,
        "IQL with OGBench's single-task settings on cube-single-play-task1: success rate at each evaluation, seed 0",
        "2026-12-03", "20,000 updates (2% of OGBench's 1M), 10 evaluation episodes every 5,000",
        "bash benchmarks/cube_long.sh", "robotics"),
    "cube_budget": Experiment(
        ("cube_single_100000",), ("--metric", "success_rate"), None,
        "cube-single-play-task1 at ten times the budget, offrl's default settings: success rate at each "
        "evaluation, mean over seeds",
        "2026-12-03", "100,000 updates (10% of OGBench's 1M), 10 evaluation episodes every 10,000",
        "bash benchmarks/cube_tasks.sh cube-single-play-task1 AGENT SEEDS 100000", "robotics", ("learning_curves",)),
    "ogbench_navigate": Experiment(
        ("ogbench_navigate",), ("--metric", "success_rate"), success_table,
        "OGBench's pointmaze-medium-navigate protocol (five evaluation tasks): final success rate, mean +- std over "
        "seeds 0-2", "2026-12-02 to 2026-12-03",
        "GCBC (agent=bc) 20,000 updates, GCIQL (agent=iql, OGBench's settings) 10,000 updates (2% and 1% of "
        "OGBench's 1M); 50 evaluation episodes (10 per task)", "bash benchmarks/ogbench_navigate.sh [gciql]",
        "robotics", ("learning_curves",)),
}

# table -> the result files (not offrl report's) it is made from, the function making it, and its caption
RESULT_FILES = {
    "dataset_quality": (RESULTS / "dataset_analysis", quality_table,
                        "TQ and SACo of every generated locomotion dataset (offrl datasets analyze; SACo relative to "
                        "the family's medium-replay set, 5 bin edges, first 100k transitions). Analysed 2026-11-27 "
                        "(CPU only); recomputed by the command in each analysis.json"),
    "dataset_statistics": (RESULTS / "dataset_analysis", statistics_table,
                           "Statistics of every analysed build of the generated locomotion datasets (offrl datasets "
                           "analyze, benchmarks/results/dataset_analysis/): the family analyses of 2026-11-27 and the "
                           "re-analyses of the medium-replay sets rebuilt on 2026-12-04 (build: rebuild), CPU only; "
                           "SACo relative to the family's medium-replay set, the random sets at their 100k build"),
    "pgd_dynamics": (RESULTS / "pgd_dynamics_hopper_medium" / "dynamics.json", dynamics_table,
                     "Dynamics error of synthetic hopper-medium transitions, replayed in the simulator, by guidance "
                     "coefficient: 64 trajectories of 65 steps per coefficient from the CPU-preset trajectory model "
                     "trained 12,000 steps (validation loss 0.229), guided by an IQL agent after 10,000 updates (1% "
                     "of the paper's 1M). Measured 2026-12-02, 2-core CPU, 1 thread (bash benchmarks/pgd_dynamics.sh)"),
}


# benchmark results the speed page shows: each benchmark script writes a Markdown record of its measurement (its
# command, machine and date) beside its JSON in benchmarks/results/
BENCHMARKS = ("roofline", "threads_under_load", "seeds_speed", "seeds_speed_compiled", "seeds_train", "denormals",
              "td3bc_speed", "sac_vs_sb3_speed", "prdc_speed", "odice_speed", "expo_speed", "trajectory_speed",
              "trajectory_speed_presets", "synthetic_refresh", "generate_speed", "ogbench_generate", "analysis_speed",
              "precision", "ensemble_head", "fql_speed", "layer_norm_fold")


def benchmark_fragment(path: Path) -> str:
    """A benchmark's Markdown record as a fragment: its title a bold caption (the page has its own headings), and
    the paragraphs before its first table (command, machine, date) in caption type."""
    paragraphs = path.read_text().strip("\n").split("\n\n")
    shown, table_seen = [], False
    for paragraph in paragraphs:
        paragraph = "\n".join(line.rstrip() for line in paragraph.split("\n"))
        if paragraph.startswith("#"):
            paragraph = f"**{paragraph.lstrip('#').strip().rstrip('.')}.**"
        table_seen = table_seen or paragraph.startswith("|")
        shown.append(paragraph if table_seen else f"{paragraph}\n{{: .caption }}")
    return "\n\n".join(shown)


def _records(report: dict) -> list[dict]:
    """The finished runs' results.json of a report."""
    return [json.loads((_run_path(r["path"]) / "results.json").read_text()) for r in report["runs"]
            if r["status"] == "finished"]


def machine(report: dict) -> str:
    """Where a report's runs ran, from their records: the CPU model(s) (results.json ``cpu``, where recorded), the
    device and the torch threads per run (config.yaml ``threads``). Every run so far ran on a 2-core VM."""
    key = json.dumps([r["path"] for r in report["runs"]])
    if key not in _MACHINES:
        _MACHINES[key] = _machine(report)
    return _MACHINES[key]


_MACHINES: dict[str, str] = {}  # machine() of a report's runs, read once


def _machine(report: dict) -> str:
    results = _records(report)
    cpus = Counter(r.get("cpu") or "model not recorded" for r in results)
    gpu = any(r.get("device", "cpu") != "cpu" for r in results)
    threads = sorted({str(yaml.safe_load((_run_path(r["path"]) / "config.yaml").read_text()).get("threads"))
                      for r in report["runs"] if (_run_path(r["path"]) / "config.yaml").is_file()})
    described = ", ".join(f"{cpu} ({count} runs)" if len(cpus) > 1 else cpu for cpu, count in cpus.most_common())
    return (f"2-core x86-64 VMs {'with' if gpu else 'without'} GPU (CPU: {described}), "
            f"{' or '.join(threads)} torch thread{'' if threads == ['1'] else 's'} per run")


def caption(experiment: Experiment, report: dict, more: str = "") -> str:
    """The table's caption: what it shows, when, on what machine and at what budget, said once (a paragraph the
    pages set in small type: attr_list's ``{: .caption }``)."""
    return (f"**{experiment.title}.** Runs of {experiment.date} on {machine(report)}. Budget: {experiment.budget}. "
            f"Re-run: `{experiment.command}`; report: `benchmarks/results/reports/{_name(experiment)}/`.{more}"
            "\n{: .caption }")


def _name(experiment: Experiment) -> str:
    return next(name for name, e in EXPERIMENTS.items() if e is experiment)


def budget_cell(steps: list[int], axis: str) -> str:
    """'10k gradient steps (1%)': a group's budget as a share of the papers' 1M."""
    unit = "env steps" if "env" in axis else "updates"
    values = sorted(set(steps))
    shown = " / ".join(f"{s // 1000}k" if s % 1000 == 0 else f"{s:,}" for s in values)
    shares = " / ".join(f"{100 * s / PAPER_BUDGET:g}%" for s in values)
    return f"{shown} {unit} ({shares} of 1M)"


def _variant(label: str) -> str:
    """What a ``--by`` label's values mean, for the algorithm pages."""
    if label in EXPO_COLUMNS:
        return EXPO_COLUMNS[label]
    if "[" not in label:
        return ""
    values = label.rstrip("]").split("[")[1]
    if label.startswith("odice["):
        return f"update_mode={values}"
    if "," in values:  # synthetic.model,[synthetic.num_trajectories,]synthetic.guidance_coef
        parts = values.split(",")
        size = "" if len(parts) == 2 or parts[0] == "?" else f", tables of {'128' if parts[1] == '?' else parts[1]}"
        return {"real": "real data only", "unguided": "+ unguided synthetic"}.get(
            _synthetic_column(label), f"+ {_synthetic_column(label)} synthetic") + size
    return values


def agent_rows(report: dict, agent: str) -> list[tuple[str, str, str, int, str]]:
    """(dataset, variant, score, seeds, budget): an agent's groups of one report, in dataset order."""
    digits = 2 if report["metric"] == "success_rate" else 1
    rows = []
    for g in report["groups"]:
        if g["agent"].split("[")[0] != agent or not g["n"]:
            continue
        axis = report["step_axis"].get(g["dataset"], "")
        rows.append((g["dataset"], _variant(g["agent"]), f"{g['mean']['point']:.{digits}f} +- {g['std']:.{digits}f}",
                     g["n"], budget_cell(g["steps"], axis)))
    first = {"": 0, "real data only": 0, "+ unguided synthetic": 1}  # controls before the variants they control
    return sorted(rows, key=lambda row: (dataset_order(row[0]), first.get(row[1], 2), row[1]))


def rows_table(rows: list[tuple[str, str, str, int, str]], metric: str) -> str:
    """| dataset | (variant |) metric | seeds | budget |: the variant column only where a row has one."""
    variant = any(row[1] for row in rows)
    lines = [f"| dataset | {'variant | ' if variant else ''}{metric} | seeds | budget (share of the paper's) |",
             f"|---|{'---|' if variant else ''}---:|---:|---|"]
    lines += [f"| {d} | {f'{v} | ' if variant else ''}{score} | {n} | {budget} |" for d, v, score, n, budget in rows]
    return "\n".join(lines)


def agent_fragment(agent: str, reports: dict[str, dict], tables: dict[str, str]) -> str:
    """docs/algorithms/_results/<agent>.md: the agent's rows of every experiment, each with its caption."""
    parts = ["<!-- generated by benchmarks/make_tables.py from benchmarks/records/; do not edit -->"]
    if agent == "pgd" and "pgd" in reports:  # every agent's rows, each with its budget; then the dynamics error
        report = reports["pgd"]
        rows = [(d, f"{NAMES[a]} {v}", score, n, budget) for a in AGENTS for d, v, score, n, budget in
                agent_rows(report, a)]
        more = " All results: [policy-guided diffusion](../results/pgd.md)."
        parts += [f"{caption(EXPERIMENTS['pgd'], report, more)}\n\n{rows_table(rows, 'normalized score')}",
                  tables["pgd_dynamics"]]
        return "\n\n".join(parts) + "\n"
    whole = {"pgd": (("pgd_dynamics",), "policy-guided diffusion", "pgd"),
             "expo": (("expo_pointmaze", "expo_hopper"), "EXPO", "expo")}
    if agent in whole:  # the experiment's own tables: every row is this method's
        names, title, page = whole[agent]
        parts += [tables[name] for name in names if name in tables] or [f"No recorded runs of {title} yet."]
        parts.append(f"All results: [Results: {title}](../results/{page}.md).")
        return "\n\n".join(parts) + "\n"
    found = False
    for name, experiment in EXPERIMENTS.items():
        report = reports.get(name)
        if report is None:
            continue
        rows = agent_rows(report, agent)
        if not rows:
            continue
        found = True
        metric = report["metric"].replace("_", " ")
        more = f" All results: [{PAGES[experiment.page]}](../results/{experiment.page}.md)."
        parts.append(f"{caption(experiment, report, more)}\n\n{rows_table(rows, metric)}")
    if not found:
        parts.append(f"No recorded runs of {NAMES.get(agent, agent)} yet.")
    return "\n\n".join(parts) + "\n"


# the table at a glance: (agent, experiment, group label, dataset); one row each
GLANCE_ROWS = [
    ("bc", "offline_table", "bc", "hopper-medium"),
    ("td3bc", "offline_table", "td3bc", "hopper-medium"),
    ("prdc", "offline_table", "prdc", "hopper-medium"),
    ("a2pr", "offline_table", "a2pr", "hopper-medium"),
    ("odice", "offline_table", "odice", "hopper-medium"),
    ("iql", "pgd", "iql[?,0.0]", "hopper-medium"),
    ("sac", "pmoe_vs_sac", "sac", "Hopper-v5"),
    ("pmoe", "pmoe_vs_sac", "pmoe", "Hopper-v5"),
    ("expo", "expo_hopper", "expo[0.5]", "hopper-medium"),
    ("expo", "expo_pointmaze", "expo[0.5]", "pointmaze-umaze"),
    ("pgd", "pgd", "td3bc[hopper-medium,1.0]", "hopper-medium"),
]
PAGES = {"offline": "offline agents", "odice": "O-DICE diagnostics", "online": "online agents", "expo": "EXPO",
         "pgd": "policy-guided diffusion", "robotics": "goal-conditioned data and robotics", "speed": "speed"}
METRIC_NAMES = {"normalized_score": "normalized score", "return_mean": "return", "success_rate": "success rate"}


def glance_table(reports: dict[str, dict], link: str) -> str:
    """| agent | setting | dataset / task | metric | result | budget |: one recorded result per agent; ``link`` is the
    path prefix of the documentation from where the table is shown."""
    lines = ["| agent | dataset / task | metric | result (mean +- std, seeds) | budget (share of the paper's) |",
             "|---|---|---|---:|---|"]
    for agent, name, label, dataset in GLANCE_ROWS:
        report = reports.get(name)
        group = next((g for g in (report or {}).get("groups", []) if g["agent"] == label and g["dataset"] == dataset),
                     None)
        if group is None or not group["n"]:
            continue
        digits = 2 if report["metric"] == "success_rate" else 1
        title = "PGD + TD3+BC" if agent == "pgd" else NAMES[agent]
        shown = f"[{title}]({link}algorithms/{agent}.md)"
        lines.append(f"| {shown} | {dataset} | {METRIC_NAMES[report['metric']]} | {group['mean']['point']:.{digits}f} "
                     f"+- {group['std']:.{digits}f} ({group['n']}) | "
                     f"{budget_cell(group['steps'], report['step_axis'].get(dataset, ''))} |")
    return "\n".join(lines)


def glance_caption(reports: dict[str, dict]) -> str:
    dates = sorted({EXPERIMENTS[name].date for _, name, _, _ in GLANCE_ROWS if name in reports})
    if not dates:
        return "**At a glance: one recorded result per agent.** No runs recorded yet."
    first, last = dates[0].split(" to ")[0], dates[-1].split(" to ")[-1]
    cpus = sorted({r.get("cpu") for name in {n for _, n, _, _ in GLANCE_ROWS if n in reports}
                   for r in _records(reports[name]) if r.get("cpu")})
    return (f"**At a glance: one recorded result per agent.** Runs of {first} to {last} on 2-core CPUs "
            f"({', '.join(cpus)}; some runs did not record the model), CPU only, 1 torch thread per run. Budgets are "
            "a few percent of the papers' 1M steps, so these numbers say what short runs do, not what the methods "
            "reach; every table, with its caption, is on the results pages.\n{: .caption }")


MARKERS = ("<!-- results:start -->", "<!-- results:end -->")


def replace_marked(text: str, block: str) -> tuple[str, bool]:
    """``text`` with what lies between the results markers replaced by ``block``."""
    start, end = MARKERS
    if start not in text or end not in text:
        return text, False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}", True


def replace_table(text: str, table: str) -> tuple[str, bool]:
    """``text`` with the Markdown table whose header line equals ``table``'s first line replaced (indented as
    the old one, e.g. inside a list item)."""
    lines = text.split("\n")
    header = table.split("\n")[0]
    for i, line in enumerate(lines):
        if line.strip() == header:
            indent = line[:len(line) - len(line.lstrip())]
            end = i
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            return "\n".join(lines[:i] + [indent + row for row in table.split("\n")] + lines[end:]), True
    return text, False


def training_scalars(tb: Path) -> dict[str, list[list[float]]]:
    """The ``train/*`` TensorBoard scalars of a run (its agent's diagnostics): tag -> [[step, value], ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [[e.step, e.value] for e in events.Scalars(tag)]
            for tag in sorted(events.Tags()["scalars"]) if tag.startswith("train/")}


def archive(runs: Path, records: Path) -> int:
    """Copy results.json and config.yaml of every finished training run under ``runs`` to the same place
    under ``records``, with its training diagnostics from TensorBoard as scalars.json (``training_scalars``;
    a few kB); the number of runs copied."""
    copied = 0
    for results in sorted(runs.rglob("results.json")):
        if "agent" not in json.loads(results.read_text()):
            continue  # not an offrl train run (e.g. a trajectory model's offrl diffusion train)
        target = records / results.parent.relative_to(runs)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "config.yaml"):
            if (results.parent / name).is_file():
                shutil.copy2(results.parent / name, target / name)
        scalars = training_scalars(results.parent / "tb") if (results.parent / "tb").is_dir() else {}
        if scalars:
            (target / "scalars.json").write_text(json.dumps(scalars, separators=(",", ":")) + "\n")
        copied += 1
    return copied


def _relative(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it (so that reports hold portable run paths)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def run_report(name: str, records: Path, reports: Path, reps: str) -> int:
    """``offrl report`` on one experiment's records into ``reports/<name>/``; 1 where it has no records."""
    experiment = EXPERIMENTS[name]
    dirs = [records / d for d in experiment.subdirs if (records / d).is_dir()]
    if not dirs:
        print(f"make_tables: skipped {name}: no records under {records}", file=sys.stderr)
        return 1
    cwd = Path.cwd()
    os.chdir(ROOT)  # run paths in report.json relative to the repository
    try:
        return offrl_report.main([*map(_relative, dirs), "--out", _relative(reports / name), "--reps", reps,
                                  *experiment.options])
    finally:
        os.chdir(cwd)


def shown(text: str) -> str:
    """Tables as the pages show them: mean \u00b1 std."""
    return text.replace(" +- ", " \u00b1 ")


# offrl against d3rlpy (benchmarks/parity_d3rlpy.py): one record per implementation, algorithm, dataset and seed
PARITY = ROOT / "benchmarks" / "records" / "parity"
PARITY_ALGOS = ("bc", "td3bc", "prdc", "iql", "cql", "rebrac", "calql")
PARITY_NAMES = {"cql": "CQL", "calql": "Cal-QL (offline-to-online)", "rebrac": "ReBRAC"}
# context only, beside the parity table: CORL's README, "Last Scores", Gym-MuJoCo (corl-team/CORL, commit eeeeef2):
# 1M gradient steps on D4RL's v2 datasets, other data than the generated sets of the same names. CORL has no PRDC
# column and no Cal-QL score on these datasets.
CORL_LAST = {("bc", "halfcheetah-medium"): "42.40 +- 0.19", ("td3bc", "halfcheetah-medium"): "48.10 +- 0.18",
             ("cql", "halfcheetah-medium"): "47.04 +- 0.22", ("iql", "halfcheetah-medium"): "48.31 +- 0.22",
             ("rebrac", "halfcheetah-medium"): "64.04 +- 0.68",
             ("bc", "hopper-medium-replay"): "29.81 +- 2.07", ("td3bc", "hopper-medium-replay"): "64.42 +- 21.52",
             ("cql", "hopper-medium-replay"): "95.11 +- 5.27", ("iql", "hopper-medium-replay"): "97.43 +- 6.39",
             ("rebrac", "hopper-medium-replay"): "94.98 +- 6.53"}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _mean_std(values: list[float]) -> str:
    """'mean +- std' (population std, ddof 0, as offrl report's)."""
    mean = _mean(values)
    return f"{mean:.1f} +- {_mean([(v - mean) ** 2 for v in values]) ** 0.5:.1f}"


def _budget(record: dict) -> str:
    b = record["budget"]
    shown = f"{b['offline_updates']:,} updates"
    if b["online_env_steps"]:
        shown += f" + {b['online_env_steps']:,} env steps"
    return f"{shown}, batch {b['batch_size']}"


def _short_cpu(record: dict) -> str:
    """'AMD EPYC' / 'Intel Xeon' from a record's CPU model string."""
    cpu = record.get("cpu") or "unknown CPU"
    return " ".join(cpu.replace("(R)", "").replace("(TM)", "").split()[:2])


def _parity_builds(found: list[dict]) -> list[str]:
    """One line per dataset whose records come from more than one build of its recipe: each build's size, the machine
    it was made on and the records on it (a build: the machine and the file's size, which older records also hold;
    whether a pair's two sides read the same bytes is checked on their SHA-256 in ``parity_fragment``)."""
    builds: dict[str, dict[tuple, list[dict]]] = {}
    for r in found:
        data = r.get("data", {})
        key = (_short_cpu(r), data.get("transitions"), data.get("episodes"))
        builds.setdefault(r["dataset"], {}).setdefault(key, []).append(r)
    lines = []
    for dataset, by_build in builds.items():
        if len(by_build) < 2:
            continue
        parts = []
        for (cpu, transitions, episodes), runs in sorted(by_build.items(), key=lambda kv: kv[0][0]):
            algos = sorted({PARITY_NAMES.get(r["algo"]) or NAMES.get(r["algo"], r["algo"]) for r in runs})
            parts.append(f"{transitions:,} transitions in {episodes:,} episodes, built on {cpu} "
                         f"({len(runs)} records: {', '.join(algos)})")
        lines.append(f"- {dataset}: " + "; ".join(parts))
    return lines


def parity_fragment(records: Path) -> str:
    """docs/results/_tables/parity.md: offrl and d3rlpy side by side per dataset and algorithm (score mean +- std over
    seeds, updates/s of each and their ratio, d3rlpy's loop rate), CORL's published score as context; a caption with
    the dates, CPUs, versions, budgets and commands taken from the records."""
    found = [json.loads(path.read_text()) for path in sorted(records.glob("*.json"))]
    if not found:
        return ("**offrl against d3rlpy.** No runs recorded yet; `python benchmarks/parity_d3rlpy.py` makes them "
                "(benchmarks/README.md).\n{: .caption }")
    groups: dict[tuple[str, str], dict[str, dict[int, dict]]] = {}
    for r in found:
        label = r["dataset"] if not r.get("size") else f"{r['dataset']}-{r['size']}"
        groups.setdefault((label, r["algo"]), {}).setdefault(r["impl"], {})[r["seed"]] = r
    order = sorted(groups, key=lambda k: (dataset_order(k[0]), PARITY_ALGOS.index(k[1])
                                          if k[1] in PARITY_ALGOS else 99))
    mixed = len({_short_cpu(r) for r in found}) > 1  # a CPU column when the records come from several machines
    lines = ["| dataset | algorithm | budget | offrl score | d3rlpy score | offrl updates/s | d3rlpy updates/s | "
             "offrl / d3rlpy (per seed) | d3rlpy loop updates/s | CORL, 1M updates on D4RL v2 (context only) |"
             + (" CPU |" if mixed else ""),
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---|" if mixed else "")]
    mismatches: dict[str, set[str]] = {}
    unpaired: list[str] = []  # pairs whose two sides read different dataset bytes
    for label, algo in order:
        impls = groups[(label, algo)]
        offrl, d3 = impls.get("offrl", {}), impls.get("d3rlpy", {})
        any_record = next(iter((offrl or d3).values()))

        def score(runs: dict[int, dict]) -> str:
            if not runs:
                return ""
            final = _mean_std([r["normalized_score"] for r in runs.values()])
            pre = [r["pretrain_normalized_score"] for r in runs.values()
                   if r.get("pretrain_normalized_score") is not None]
            return (f"{_mean_std(pre)} &rarr; {final}" if pre else final) + f" ({len(runs)})"

        speed = {impl: _mean(r["updates_per_s"] for r in runs.values()) if runs else None
                 for impl, runs in (("offrl", offrl), ("d3rlpy", d3))}
        rate = {impl: "" if value is None else f"{value:.1f}" for impl, value in speed.items()}
        name = PARITY_NAMES.get(algo) or NAMES.get(algo, algo)
        seeds = sorted(set(offrl) & set(d3))
        paired = [offrl[s]["updates_per_s"] / d3[s]["updates_per_s"] for s in seeds]
        ratio = ""
        if paired:  # the mean of the per-seed ratios (each pair ran on one machine, one after the other), their range
            ratio = f"{_mean(paired):.2f}"
            ratio += f" ({min(paired):.2f}-{max(paired):.2f})" if len(paired) > 1 else ""
        for s in seeds:
            digests = {offrl[s].get("data", {}).get("sha256"), d3[s].get("data", {}).get("sha256")}
            if None not in digests and len(digests) > 1:
                unpaired.append(f"{label} {name} seed {s}")
        loop = f"{_mean(r['loop_updates_per_s'] for r in d3.values()):.1f}" if d3 else ""
        context = CORL_LAST.get((algo, label), "")
        row_cpus = ", ".join(sorted({_short_cpu(r) for runs in (offrl, d3) for r in runs.values()}))
        lines.append(f"| {label} | {name} | {_budget(any_record)} | {score(offrl)} | {score(d3)} | {rate['offrl']} | "
                     f"{rate['d3rlpy']} | {ratio} | {loop} | {context} |" + (f" {row_cpus} |" if mixed else ""))
        for r in d3.values():
            mismatches.setdefault(name, set()).update(r.get("mapping", {}).get("mismatches", []))
    dates = sorted({r["date"] for r in found})
    cpus = sorted({r.get("cpu") or "CPU model not recorded" for r in found})
    versions = sorted({r["version"] for r in found if r["impl"] == "d3rlpy"})
    torch = sorted({str(r.get("torch")) for r in found})
    episodes = sorted({r["budget"]["eval_episodes"] for r in found})
    commands = sorted({r["benchmark_command"] for r in found})
    windows = sorted({r["loop_window"][0] for r in found if r["impl"] == "d3rlpy"})
    pinned = ", each process pinned to one core" if all(r.get("pinned_core") is not None for r in found) else ""
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    caption = (f"**offrl against d3rlpy {', '.join(versions) or '(no d3rlpy run yet)'} on the same generated files.** "
               f"Runs of {when} on {', '.join(cpus)}, CPU only (torch {', '.join(torch)}), 1 thread per run (torch, "
               f"OpenMP, BLAS){pinned}, one run at a time. Both train on the transitions offrl's loader gives "
               "(rewards after offrl's preprocessing, offrl's state statistics), with offrl's composed "
               "hyperparameters set in d3rlpy's config (benchmarks/parity_d3rlpy.py), the same batch, budget and "
               "seeds, and are evaluated "
               f"alike: {' / '.join(map(str, episodes))} deterministic episodes at the end (Cal-QL also at the end of "
               "pre-training: pre-training &rarr; final), episode i reset with seed + 100 + i, normalized score from "
               "the file's reference returns; mean +- std over seeds (ddof 0), seeds in brackets. updates/s: "
               "gradient updates over the seconds inside the update call, whole run, the same accounting for both "
               "(sampling, logging and evaluation excluded); offrl / d3rlpy is the mean of the per-seed ratios, the "
               "two runs of a seed made one after the other on one machine and one dataset file (SHA-256 recorded); "
               "records from several machines (CPU column) train on each machine's build of the same recipe, so "
               "seeds may differ in the bytes of the data, not in its recipe; d3rlpy's loop rate adds its batch "
               "sampling and "
               f"per-step logging (offline updates after the first {' / '.join(f'{w:,}' for w in windows)}). The "
               "CORL column is context only: CORL's README "
               "last scores (corl-team/CORL commit eeeeef2), 1M updates on D4RL's v2 datasets, other data than "
               f"these generated sets; CORL has no PRDC or locomotion Cal-QL score. Re-run: "
               + "; ".join(f"`{c}`" for c in commands) + ".\n{: .caption }")
    notes = [f"- {name}: " + "; ".join(sorted(found_)) for name, found_ in mismatches.items() if found_]
    text = f"{caption}\n\n" + "\n".join(lines)
    if unpaired:
        text += "\n\n**Not paired on the same bytes** (the two sides' dataset files differ): " + ", ".join(unpaired)
    builds = _parity_builds(found)
    if builds:
        text += "\n\nDatasets built more than once (each machine builds its own copy of the recipe; a pair always " \
                "shares one):\n\n" + "\n".join(builds)
    if notes:
        text += "\n\nWhat d3rlpy's implementation does differently at these settings (recorded with each run):\n\n" + \
                "\n".join(notes)
    return text


def write_pages(reports_dir: Path, docs: Path, readme: Path | None) -> list[Path]:
    """Stage 3: every table fragment, every agent's fragment and the README's table; the files written."""
    tq = task_quality(RESULTS / "dataset_analysis")
    reports = {name: json.loads((reports_dir / name / "report.json").read_text()) for name in EXPERIMENTS
               if (reports_dir / name / "report.json").is_file()}
    tables: dict[str, str] = {}
    header = "<!-- generated by benchmarks/make_tables.py from benchmarks/records/; do not edit -->"
    for name, (source, table, text) in RESULT_FILES.items():
        title, _, rest = text.partition(". ")
        tables[name] = f"**{title}.** {rest + '.' if rest else ''}\n{{: .caption }}\n\n{table(source)}"
    for name in BENCHMARKS:
        tables[f"speed_{name}"] = benchmark_fragment(RESULTS / f"{name}.md")
    tables["parity"] = parity_fragment(PARITY)  # offrl against d3rlpy (benchmarks/parity_d3rlpy.py)
    for name, report in reports.items():
        experiment = EXPERIMENTS[name]
        pre = PRE_RECORDS.get(name)
        pre_records = json.loads(pre.read_text())["rows"] if pre is not None and pre.is_file() else []
        body = (experiment.table or evaluations_table)(report, tq, pre_records)
        tables[name] = f"{caption(experiment, report)}\n\n{body}"
    written = []
    out = docs / "results" / "_tables"
    out.mkdir(parents=True, exist_ok=True)
    tables[GLANCE] = f"{glance_caption(reports)}\n\n{glance_table(reports, '../')}"
    tables[f"{GLANCE}_home"] = f"{glance_caption(reports)}\n\n{glance_table(reports, '')}"  # for docs/index.md
    for name, text in tables.items():
        (out / f"{name}.md").write_text(shown(f"{header}\n\n{text}\n"))
        written.append(out / f"{name}.md")
    fragments = docs / "algorithms" / "_results"
    fragments.mkdir(parents=True, exist_ok=True)
    for agent in [*AGENTS, "pgd"]:
        (fragments / f"{agent}.md").write_text(shown(agent_fragment(agent, reports, tables)))
        written.append(fragments / f"{agent}.md")
    if readme is not None:
        block = (f"{glance_table(reports, 'docs/')}\n\nBudgets are a few percent of the papers' 1M steps: these are "
                 "short-run results, each with its date, machine and budget in the "
                 "[results](docs/results/index.md).")
        text, found = replace_marked(readme.read_text(), shown(block))
        if not found:
            print(f"make_tables: {readme} has no {MARKERS[0]} ... {MARKERS[1]} block; not written", file=sys.stderr)
        else:
            readme.write_text(text)
            written.append(readme)
    return written


def copy_figures(reports_dir: Path, docs: Path) -> None:
    """The report figures the documentation shows, into docs/results/figures/<experiment>-<figure>.png."""
    target = docs / "results" / "figures"
    target.mkdir(parents=True, exist_ok=True)
    for name, experiment in EXPERIMENTS.items():
        for figure in experiment.figures:
            source = reports_dir / name / f"{figure}.png"
            if source.is_file():
                shutil.copy2(source, target / f"{name}-{figure}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "benchmarks" / "runs", help="run directories")
    parser.add_argument("--records", type=Path, default=ROOT / "benchmarks" / "records",
                        help="the runs' results.json and config.yaml, committed; what the reports read")
    parser.add_argument("--archive", action="store_true", help="first copy the finished runs' records")
    parser.add_argument("--reports", "--out", type=Path, default=RESULTS / "reports", dest="reports",
                        help="offrl report's output, one directory per experiment")
    parser.add_argument("--reps", default="2000", help="bootstrap replications for offrl report")
    parser.add_argument("--pages-only", action="store_true", help="only write the pages, from the reports as they are")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="the documentation's directory")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the README whose table is written")
    parser.add_argument("--only", nargs="+", choices=sorted(EXPERIMENTS), help="re-run only these experiments' reports")
    args = parser.parse_args(argv)
    if args.archive:
        print(f"make_tables: {archive(args.runs, args.records)} runs' records copied from {args.runs} "
              f"to {args.records}")
    if not args.pages_only:
        for name in EXPERIMENTS:
            if args.only and name not in args.only:
                continue
            if run_report(name, args.records, args.reports, args.reps) > 1:
                return 2
        copy_figures(args.reports, args.docs)
    written = write_pages(args.reports, args.docs, args.readme)
    print(f"make_tables: wrote {len(written)} files ({args.docs / 'results' / '_tables'}, "
          f"{args.docs / 'algorithms' / '_results'}, {args.readme})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
