"""Regenerate the README's result tables from the experiments' runs with ``offrl report``.

    python experiments/make_readme_tables.py [--archive] [--records experiments/records]
                                             [--out experiments/results/reports] [--reps 2000] [--write-readme]

Run directories (checkpoints, TensorBoard) live under ``experiments/runs/`` and are not committed. What a report
needs of a run, its ``results.json`` (final scores and the evaluation history) and ``config.yaml``, is kept under
``experiments/records/`` with the same relative paths, committed, so the tables can be rebuilt on any machine:
``--archive`` first copies those two files of every finished run under ``--runs`` into ``--records``, with the
run's ``train/*`` TensorBoard scalars as ``scalars.json`` (the diagnostics columns of the O-DICE ablation table
come from them). For each experiment below whose records exist (the sweeps of ``experiments/offline_table.sh`` and
the scripts named beside them), this runs ``offrl report`` on them (report.md, report.json and figures into
``<out>/<experiment>/``) and prints the README's table built from report.json. With ``--write-readme`` it also
replaces that table in README.md, found by its header line (the text around it is left alone). Experiments without
records are listed and skipped. A table being re-run takes the cells its records lack from an older summary named
in PRE_RECORDS (runs made before records were kept), marked with a dagger. Every table has been re-run with
records by 2026-12-05, so none is named now; the older summaries stay in experiments/results/ as history
(offline_table, odice_ablation, robotics_pre_records, pgd_pre_records).

The TQ column of the offline table comes from the ``analysis.json`` files under
``experiments/results/dataset_analysis/`` (``offrl datasets analyze``): each row shows the TQ of the build its runs
trained on, told apart by the transition and episode counts their results.json records (a dataset rebuilt since its
family's analysis, e.g. a medium-replay set whose SAC run was repeated on another CPU, is analysed again in a
directory of its own).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from offrl.cli import report as offrl_report

ROOT = Path(__file__).resolve().parent.parent
NAMES = {"bc": "BC", "td3bc": "TD3+BC", "prdc": "PRDC", "a2pr": "A2PR", "odice": "O-DICE", "iql": "IQL",
         "sac": "SAC", "pmoe": "PMOE"}
FAMILIES = ("hopper", "halfcheetah", "walker2d")
# experiment -> the summary of its runs made before records were kept (their runs are gone): rows of agent,
# dataset, mean, std (and n); they fill, marked with a dagger, the cells the records do not have yet
PRE_RECORDS: dict[str, Path] = {}  # none left: every table's cells were re-run with records by 2026-12-05
QUALITIES = ("random", "medium", "medium-replay", "medium-expert", "expert")


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


def dynamics_table(path: Path) -> str:
    """| guidance coef | agent log-likelihood ... |: ``offrl diffusion dynamics``'s dynamics.json, one row per
    guidance coefficient."""
    lines = ["| guidance coef | agent log-likelihood of the actions | next-obs MSE | relative to obs variance | "
             "reward abs error |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['guidance_coef']:g} | {r['agent_log_prob']:.2f} | {r['next_obs_mse']:.3g} | "
              f"{r['next_obs_mse_relative']:.3f} | {r['reward_abs_error']:.3f} |"
              for r in json.loads(path.read_text())["rows"]]
    return "\n".join(lines)


def _builds(report: dict) -> dict[str, set[Build]]:
    """dataset -> the builds the report's runs trained on (from each run's results.json)."""
    builds: dict[str, set[Build]] = {}
    for group in report["groups"]:
        for run in group["runs"]:
            data = json.loads((Path(run) / "results.json").read_text()).get("data") or {}
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


def synthetic_table(report: dict, tq: dict[str, dict[Build, float]], pre_records: list[dict]) -> str:
    """| dataset | agent | real data | + unguided synthetic | + policy-guided synthetic |: final normalized score,
    mean +- std over seeds (n), from the labels of ``--by synthetic.model,synthetic.guidance_coef``; cells the
    records lack from the pre-records rows, marked with a dagger."""
    def place(label: str, dataset: str) -> tuple[str, str, str]:
        agent, values = label.rstrip("]").split("[")
        model, coef = values.split(",")
        column = "real" if model == "?" else "unguided" if float(coef) == 0 else f"guided ({float(coef):g})"
        return dataset, agent, column

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
    lines += [f"| {x} | " + " | ".join(cell(label, x) for label in columns) + " |" for x in steps]
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
            runs.setdefault(run["agent"], []).append(Path(run["path"]))
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


# experiment -> run directories under --runs, offrl report options, README table (None: report only)
EXPERIMENTS = {
    # experiments/offline_table.sh
    "offline_table": (["offline_table"], ["--metric", "normalized_score"], offline_table),
    "pmoe_vs_sac": (["pmoe_vs_sac"], ["--metric", "return_mean"], online_table),
    "odice_ablation": (["offline_table", "odice_ablation"], ["--by", "agent.update_mode", "--agents", "odice",
                                                            "--datasets", "hopper-medium-replay"], ablation_table),
    "long_hopper_mr": (["long_hopper_mr"], ["--metric", "normalized_score"], None),
    # the robotics runs (commands in experiments/robotics.sh; the cube rows also by experiments/cube_tasks.sh)
    "robotics": (["gc_pointmaze", "cube_single", "cube_double"], ["--metric", "success_rate"], success_table),
    # IQL with OGBench's single-task settings on cube-single-play-task1, 20k updates (experiments/cube_long.sh)
    "cube_long": (["cube_long"], ["--metric", "success_rate"], None),
    # the same task for 100k updates, offrl's defaults: IQL x 3 seeds, BC and TD3+BC seed 0
    # (bash experiments/cube_tasks.sh cube-single-play-task1 AGENT SEEDS 100000)
    "cube_budget": (["cube_single_100000"], ["--metric", "success_rate"], None),
    # GCBC on OGBench's pointmaze-medium-navigate protocol (experiments/ogbench_navigate.sh)
    "ogbench_navigate": (["ogbench_navigate"], ["--metric", "success_rate"], success_table),
    # real vs unguided vs policy-guided synthetic data (experiments/pgd_agents.sh)
    "pgd": (["pgd_agents"], ["--metric", "normalized_score", "--by", "synthetic.model,synthetic.guidance_coef"],
            synthetic_table),
    # EXPO vs SAC with offline data vs SAC from scratch, online (experiments/expo_evidence.sh)
    "expo_hopper": (["expo"], ["--metric", "normalized_score", "--by", "trainer.offline_fraction",
                               "--datasets", "hopper-medium"], curve_table),
    "expo_pointmaze": (["expo"], ["--metric", "success_rate", "--by", "trainer.offline_fraction",
                                  "--datasets", "pointmaze-umaze"], curve_table),
}


RESULTS = ROOT / "experiments" / "results"
# table -> the results it is made from (not offrl report's), the function making it
RESULT_FILES = {
    # offrl datasets analyze on each generated family (experiments/results/dataset_analysis/<family>/)
    "dataset_quality": (RESULTS / "dataset_analysis", quality_table),
    # offrl diffusion dynamics (experiments/pgd_dynamics.sh)
    "pgd_dynamics": (RESULTS / "pgd_dynamics_hopper_medium" / "dynamics.json", dynamics_table),
}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "experiments" / "runs", help="run directories")
    parser.add_argument("--records", type=Path, default=ROOT / "experiments" / "records",
                        help="the runs' results.json and config.yaml, committed; what the reports read")
    parser.add_argument("--archive", action="store_true", help="first copy the finished runs' records")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "reports")
    parser.add_argument("--reps", default="2000", help="bootstrap replications for offrl report")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--write-readme", action="store_true", help="replace the tables in README.md")
    parser.add_argument("--only", nargs="+", choices=sorted([*EXPERIMENTS, *RESULT_FILES]),
                        help="only these experiments (dataset_quality and pgd_dynamics: tables from result files)")
    args = parser.parse_args(argv)
    if args.archive:
        print(f"make_readme_tables: {archive(args.runs, args.records)} runs' records copied from {args.runs} "
              f"to {args.records}")
    tq = task_quality(RESULTS / "dataset_analysis")
    made, missing = 0, []
    readme = args.readme.read_text() if args.write_readme else ""
    for name, (source, table) in RESULT_FILES.items():  # tables of recorded results rather than of runs
        if args.only and name not in args.only:
            continue
        text = table(source)
        print(f"\n## {name} (from {source})\n\n{text}\n")
        readme, _ = replace_table(readme, text)
        made += 1
    for name, (subdirs, options, table) in EXPERIMENTS.items():
        if args.only and name not in args.only:
            continue
        dirs = [args.records / d for d in subdirs if (args.records / d).is_dir()]
        if not dirs:
            missing.append(f"{name} ({', '.join(str(args.records / d) for d in subdirs)})")
            continue
        out = args.out / name
        code = offrl_report.main([*map(str, dirs), "--out", str(out), "--reps", args.reps, *options])
        if code != 0:
            return code
        made += 1
        if table is None:
            continue
        pre = PRE_RECORDS.get(name)
        pre_records = json.loads(pre.read_text())["rows"] if pre is not None and pre.is_file() else []
        text = table(json.loads((out / "report.json").read_text()), tq, pre_records)
        print(f"\n## {name} (from {', '.join(map(str, dirs))})\n\n{text}\n")
        if args.write_readme:
            readme, found = replace_table(readme, text)
            if not found:
                print(f"make_readme_tables: {args.readme} has no table with the header of {name}; not written",
                      file=sys.stderr)
    if args.write_readme and made:
        args.readme.write_text(readme)
    for entry in missing:
        print(f"make_readme_tables: skipped {entry}: no records there", file=sys.stderr)
    if not made:
        print("make_readme_tables: no experiment's records found; run experiments/offline_table.sh (or the "
              "scripts named in EXPERIMENTS), then this with --archive", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
