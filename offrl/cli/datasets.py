"""``offrl datasets``: list, build, analyse and convert datasets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from offrl.cli.parser import OneLineParser, positive_int
from offrl.core.errors import DatasetError, OffrlError
from offrl.data.cache import built_sizes, cache_dir
from offrl.data.d4rl import d4rl_flags, read_d4rl_hdf5
from offrl.data.goals import observations_only
from offrl.data.minari_reader import write_minari
from offrl.data.sources import load_dataset, resolve_dataset
from offrl.generation import generate
from offrl.generation.recipes import RECIPES, cached_path, dataset_names, ensure_recipe_dataset
from offrl.tools.analysis import _fmt, analyze, default_reference, write_report


def main(args: list[str]) -> int:
    if args[:1] == ["analyze"]:
        return analyze_command(args[1:])
    parser = OneLineParser(prog="offrl datasets", formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Build, list, analyse and convert datasets.", epilog="""examples:
  offrl datasets list                                   every buildable dataset, its built sizes and paths
  offrl datasets build hopper-medium --size 100000      a smaller build, stored as hopper-medium-100000
  offrl datasets analyze hopper-medium --size 100000    TQ, SACo and plots of that build
  offrl datasets to-minari my.hdf5 --id mine/hopper/medium-v0   your file as a local Minari dataset""")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="datasets offrl can build, with size and reference returns")
    build = sub.add_parser("build", help="generate a dataset into the cache directory")
    build.add_argument("name")
    build.add_argument("--size", type=positive_int, default=None,
                       help="transitions (default: the full size); another size is stored under its own name")
    build.add_argument("--workers", type=int, default=2, help="collection processes (generated datasets)")
    build.add_argument("--from-run", default=None, help="medium-replay: a SAC run directory to read the replay of")
    build.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    to_minari = sub.add_parser("to-minari", help="write any dataset offrl reads as a local Minari dataset")
    to_minari.add_argument("source",
                           help="a dataset name (offrl datasets list), a D4RL-layout .hdf5 file or minari:<id>")
    to_minari.add_argument("--id", required=True, help="the Minari id to create, e.g. mine/hopper/medium-v0")
    to_minari.add_argument("--size", type=positive_int, default=None, help="the build of that size of a named dataset")
    to_minari.add_argument("--algorithm", default="unknown", help="what collected the data (Minari metadata)")
    to_minari.add_argument("--force", action="store_true", help="replace an existing Minari dataset of that id")
    sub.add_parser("analyze", help="dataset quality report: TQ, SACo, episodes, coverage, plots (see analyze --help)")
    ship = sub.add_parser("ship", help="(maintainers) ship behaviour policies of a SAC run into datasets/")
    ship.add_argument("family")
    ship.add_argument("--run", required=True, help="run directory trained with trainer.snapshot_policies=true")
    ship.add_argument("--command", required=True, help="the command that trained the run, for the record")
    ship.add_argument("--ref-episodes", type=int, default=100)
    try:
        ns = parser.parse_args(args)
    except SystemExit as exit_:
        return 2 if exit_.code else 0


    if ns.action == "list":
        print(f"cache directory: {cache_dir()}")
        print(f"{'name':<26} {'env':<32} {'size':>9}  {'random return':>13} {'expert return':>13}  status")
        for name in dataset_names():
            if name in RECIPES:
                env_id, size, refs = RECIPES[name].env_id, RECIPES[name].size, None
            else:
                family, quality = generate.split_name(name)
                card = generate.BehaviourCard.load(family)
                env_id, refs = card.env_id, (card.ref_min_score, card.ref_max_score)
                size = card.medium_replay_rows if quality == "medium-replay" else generate.FULL_SIZE * (
                    2 if quality == "medium-expert" else 1)
            builds = built_sizes(name)
            damaged = ""
            if refs is None and builds:
                try:
                    info = read_d4rl_hdf5(next(iter(builds.values()))).info
                    refs = (info.ref_min_score, info.ref_max_score)
                except DatasetError as err:  # one damaged or outdated build does not hide the rest of the list
                    damaged = f"; unreadable: {err}"
            shown = ("-", "-") if refs is None or None in refs else (f"{refs[0]:.1f}", f"{refs[1]:.1f}")
            full = builds.pop(None, None)
            status = (f"built: {full}" if full else "not built (builds on first use)") + damaged
            print(f"{name:<26} {env_id:<32} {size:>9}  {shown[0]:>13} {shown[1]:>13}  {status}")
            for rows, path in sorted(builds.items()):
                print(f"{'':<26} {'':<32} {rows:>9}  {'':>13} {'':>13}  built: {path}  (dataset.size={rows})")
        return 0
    if ns.action == "to-minari":

        data = load_dataset(resolve_dataset(ns.source, ns.size), build=ensure_recipe_dataset)
        if data.info.env_id is None:
            raise OffrlError(f"{ns.source}: the dataset names no environment; Minari needs one (dataset.env_id)")
        summary = data.summary()
        arrays = {"observations": data.observations, "actions": data.actions, "rewards": data.rewards,
                  "next_observations": data.next_observations, **d4rl_flags(data.terminals, data.episode_ends)}
        where = write_minari(ns.id, arrays, data.info.env_id, algorithm=ns.algorithm,
                             description=f"written by offrl datasets to-minari from {data.info.location}",
                             ref_min_score=data.info.ref_min_score, ref_max_score=data.info.ref_max_score,
                             replace=ns.force)
        print(f"offrl: wrote minari:{ns.id} ({summary['transitions']} transitions, {summary['episodes']} episodes) "
              f"to {where}; train on it with: offrl train dataset=minari dataset.id={ns.id}")
        return 0
    if ns.action == "ship":
        card = generate.ship_behaviour(ns.family, Path(ns.run), ns.command, ns.ref_episodes)
        print(json.dumps(card.__dict__["policy_returns"]))
        return 0
    if ns.force:
        cached_path(ns.name, ns.size).unlink(missing_ok=True)
    options = {"workers": ns.workers, "from_run": Path(ns.from_run) if ns.from_run else None}
    path = ensure_recipe_dataset(ns.name, ns.size, **options)
    print(f"offrl: dataset {ns.name} is ready; {read_d4rl_hdf5(path).describe()}")
    return 0


def _subset(text: str) -> int | None:
    return None if text == "all" else positive_int(text)


def analyze_command(args: list[str]) -> int:
    """``offrl datasets analyze NAME [NAME ...] [--out DIR] [--reference NAME] [--bins N] [--subset N]``."""
    parser = OneLineParser(prog="offrl datasets analyze",
                                     description="TQ, SACo and dataset statistics, as a Markdown report with plots")
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="a buildable dataset name (offrl datasets list), a D4RL-layout .hdf5/.h5 file, "
                             "or minari:<id>")
    parser.add_argument("--out", type=Path, default=Path("offrl-analysis"),
                        help="report directory (default: ./offrl-analysis)")
    parser.add_argument("--reference", default=None,
                        help="SACo reference dataset (default: <family>-medium-replay for generated datasets of "
                             "one family, else the first NAME)")
    parser.add_argument("--bins", type=positive_int, default=5, help="bin edges per dimension (default: 5)")
    parser.add_argument("--size", type=positive_int, default=None,
                        help="analyse the build of that many transitions of each named dataset (offrl datasets list)")
    parser.add_argument("--subset", type=_subset, default=100_000,
                        help="SACo counts the first N transitions of each dataset; 'all' for every one "
                             "(default: 100000)")
    try:
        ns = parser.parse_args(args)
    except SystemExit as exit_:
        return 2 if exit_.code else 0


    def load(name: str):
        # goal-conditioned data: the stored observations
        return observations_only(load_dataset(resolve_dataset(name, ns.size), build=ensure_recipe_dataset))

    names = list(dict.fromkeys(ns.names))
    loaded = {name: load(name) for name in names}
    reference_name = ns.reference or default_reference(names)
    reference = loaded[reference_name] if reference_name in loaded else load(reference_name)
    how = "given" if ns.reference else "default"
    subset = "every transition" if ns.subset is None else f"the first {ns.subset} transitions"
    print(f"offrl: SACo reference ({how}): {reference.info.name}; {ns.bins} bin edges per dimension on {subset}")

    datasets = list(loaded.values())
    results = [analyze(data, reference, ns.bins, ns.subset) for data in datasets]
    out_dir = ns.out.resolve()
    write_report(results, datasets, out_dir)

    width = max(4, *(len(result["name"]) for result in results))
    print(f"{'name':<{width}} {'transitions':>11} {'episodes':>8} {'TQ':>7} {'SACo':>7}")
    for result in results:
        print(f"{result['name']:<{width}} {result['transitions']:>11} {result['episodes']['count']:>8} "
              f"{_fmt(result['tq']['value']):>7} {_fmt(result['saco']['value']):>7}")
    print(f"offrl: report written to {out_dir / 'report.md'} (numbers in {out_dir / 'analysis.json'})")
    return 0
