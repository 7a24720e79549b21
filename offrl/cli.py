"""The ``offrl`` command.

    offrl train [hydra overrides...]      train (Hydra-composed config, see conf/)
    offrl train resume=<run dir>           continue a run from its last checkpoint
    offrl datasets list                    datasets offrl can build, with size and reference returns
    offrl datasets build <name> [--size N] generate a dataset into the cache directory
    offrl datasets analyze <name> [...]    dataset quality report: TQ, SACo, episodes, coverage, plots
    offrl datasets ship <family> --run DIR (maintainers) ship behaviour policies from a SAC run

User mistakes (bad config, bad data) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from offrl.errors import OffrlError, TrainingDiverged

GROUPS = ("agent", "dataset", "trainer")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "train":
            return _train(rest)
        if command == "datasets":
            return _datasets(rest)
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 2
    print(f"offrl: error: unknown command '{command}'; expected 'train' or 'datasets'", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------- train
def _train(overrides: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    _register_schemas()
    resume = next((o.split("=", 1)[1] for o in overrides if o.startswith("resume=")), None)
    if resume and not any(o.startswith("hydra.run.dir=") for o in overrides):
        overrides += [f"hydra.run.dir={resume}", "hydra.output_subdir=null"]
    entered = False
    status = 0

    @hydra.main(version_base="1.3", config_path="pkg://offrl.conf", config_name="config")
    def task(cfg: DictConfig) -> None:
        nonlocal entered, status
        entered = True
        from offrl.run import train

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            if cfg.resume:
                cfg = _resumed_config(cfg, Path(cfg.resume), HydraConfig.get().overrides.task)
            results = train(cfg, run_dir)
        except OffrlError as err:
            print(f"offrl: error: {err}", file=sys.stderr)
            status = 2
            return
        except TrainingDiverged as err:
            print(f"offrl: training diverged: {err}", file=sys.stderr)
            status = 1
            return
        score = results["normalized_score"]
        shown = "n/a (no reference returns)" if score is None else f"{score:.1f}"
        print(f"offrl: {results['agent']} on {results['dataset']}: normalized score {shown}, "
              f"return {results['return_mean']:.1f} +- {results['return_std']:.1f} "
              f"after {results['steps']} steps ({results['wall_s']:.0f} s); results in {run_dir / 'results.json'}")

    saved_argv = sys.argv
    sys.argv = ["offrl train", *overrides]
    try:
        task()
    except SystemExit as exit_:
        # Hydra exits 1 when composition fails (unknown group option, bad override): a user error.
        code = exit_.code if isinstance(exit_.code, int) else 1
        return 2 if code == 1 and not entered else code
    finally:
        sys.argv = saved_argv
    return status


def _register_schemas() -> None:
    """Typed schemas for Hydra: the YAML files in conf/ extend them (``/schema/<group>/<name>@_here_``),
    so defaults live once, in the dataclasses, and a mistyped key or value fails at composition."""
    from hydra.core.config_store import ConfigStore

    from offrl.agents import AGENTS
    from offrl.data.sources import DatasetConfig
    from offrl.trainer import TrainerConfig

    store = ConfigStore.instance()
    for name, cls in AGENTS.items():
        store.store(group="schema/agent", name=name, node=cls.config_class)
    store.store(group="schema", name="dataset", node=DatasetConfig)
    store.store(group="schema", name="trainer", node=TrainerConfig)


def _resumed_config(cfg, run_dir: Path, overrides: list[str]):
    """The config a run was started with, plus value overrides given now (e.g. more trainer.steps)."""
    from omegaconf import OmegaConf

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise OffrlError(f"resume={run_dir}: {saved} not found; expected a run directory written by offrl train")
    base = OmegaConf.load(saved)
    changes = [o for o in overrides if not o.startswith(("resume=", "hydra."))]
    groups = [o for o in changes if o.split("=", 1)[0] in GROUPS]
    if groups:
        raise OffrlError(f"resume={run_dir}: cannot switch config groups ({groups}) when resuming a run")
    merged = OmegaConf.merge(base, OmegaConf.from_dotlist(changes), {"resume": str(run_dir)})
    return merged


# ---------------------------------------------------------------------- datasets
def _datasets(args: list[str]) -> int:
    if args[:1] == ["analyze"]:
        from offrl.analysis import main as analyze_main

        return analyze_main(args[1:])
    parser = argparse.ArgumentParser(prog="offrl datasets")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="datasets offrl can build, with size and reference returns")
    build = sub.add_parser("build", help="generate a dataset into the cache directory")
    build.add_argument("name")
    build.add_argument("--size", type=int, default=None, help="transitions (default: the full size)")
    build.add_argument("--workers", type=int, default=2, help="collection processes (generated datasets)")
    build.add_argument("--from-run", default=None, help="medium-replay: a SAC run directory to read the replay of")
    build.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    ship = sub.add_parser("ship", help="(maintainers) ship behaviour policies of a SAC run into datasets/")
    ship.add_argument("family")
    ship.add_argument("--run", required=True, help="run directory trained with trainer.snapshot_policies=true")
    ship.add_argument("--command", required=True, help="the command that trained the run, for the record")
    ship.add_argument("--ref-episodes", type=int, default=100)
    try:
        ns = parser.parse_args(args)
    except SystemExit as exit_:
        return 2 if exit_.code else 0

    from offrl.data import generate
    from offrl.data.d4rl import read_d4rl_hdf5
    from offrl.data.recipes import RECIPES, cache_dir, cached_path, dataset_names, ensure_recipe_dataset

    if ns.action == "list":
        print(f"cache directory: {cache_dir()}")
        print(f"{'name':<26} {'env':<26} {'size':>9}  {'random return':>13} {'expert return':>13}  status")
        for name in dataset_names():
            if name in RECIPES:
                env_id, size, refs = RECIPES[name].env_id, RECIPES[name].size, None
            else:
                family, quality = generate.split_name(name)
                card = generate.BehaviourCard.load(family)
                env_id, refs = card.env_id, (card.ref_min_score, card.ref_max_score)
                size = card.medium_replay_rows if quality == "medium-replay" else generate.FULL_SIZE * (
                    2 if quality == "medium-expert" else 1)
            path = cached_path(name)
            status = f"built: {path}" if path.exists() else "not built (builds on first use)"
            if path.exists() and refs is None:
                info = read_d4rl_hdf5(path).info
                refs = (info.ref_min_score, info.ref_max_score)
            shown = ("-", "-") if refs is None else (f"{refs[0]:.1f}", f"{refs[1]:.1f}")
            print(f"{name:<26} {env_id:<26} {size:>9}  {shown[0]:>13} {shown[1]:>13}  {status}")
        return 0
    if ns.action == "ship":
        card = generate.ship_behaviour(ns.family, Path(ns.run), ns.command, ns.ref_episodes)
        print(json.dumps(card.__dict__["policy_returns"]))
        return 0
    if ns.force:
        cached_path(ns.name, ns.size).unlink(missing_ok=True)
    options = {} if ns.name in RECIPES else {"workers": ns.workers,
                                              "from_run": Path(ns.from_run) if ns.from_run else None}
    path = ensure_recipe_dataset(ns.name, ns.size, **options)
    info = read_d4rl_hdf5(path).info
    print(json.dumps({"path": str(path), "ref_min_score": info.ref_min_score, "ref_max_score": info.ref_max_score}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
