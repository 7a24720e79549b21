"""``offrl train``: Hydra composes the config, the training layer runs it; this module checks the overrides
before Hydra creates anything and prints the outcome in one line."""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import textwrap
import time
from dataclasses import fields
from importlib.resources import files
from pathlib import Path

import hydra
from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from offrl.agents import AGENTS
from offrl.cli.parser import report_stop
from offrl.core import checkpoint, records
from offrl.core.errors import Interrupted, OffrlError, TrainingDiverged
from offrl.core.runtime import check_precision, resolve_device
from offrl.core.signals import STOP, catch_stop_signals
from offrl.data.sources import DatasetConfig
from offrl.diffusion.synthetic import SyntheticConfig
from offrl.generation.recipes import ensure_recipe_dataset
from offrl.training.run import RunConfig, parse_config, train
from offrl.training.trainer import TrainerConfig

GROUPS = ("agent", "dataset", "trainer")


def main(overrides: list[str]) -> int:
    if any(o in ("-h", "--help") for o in overrides):
        print(_train_help())
        return 0
    _register_schemas()
    multirun = any(o in ("-m", "--multirun") for o in overrides)
    resume = next((o.split("=", 1)[1] for o in overrides if o.startswith("resume=")), None)
    continuing_sweep = resume is not None and (Path(resume) / SWEEP_RECORD).is_file()
    if continuing_sweep:
        if multirun:
            raise OffrlError(f"resume={resume} continues the sweep by itself; drop -m/--multirun")
        overrides, multirun, resume = _sweep_overrides(Path(resume), overrides), True, None
    elif resume:
        if multirun:
            raise OffrlError("resume=<dir> continues one run (or a sweep: resume=<sweep dir>); it cannot be combined "
                             "with -m/--multirun")
        _check_resumable(Path(resume), overrides)
        if not any(o.startswith("hydra.run.dir=") for o in overrides):
            overrides += [f"hydra.run.dir={resume}", "hydra.output_subdir=null"]
    for override in overrides:  # Hydra would create these with a traceback where it cannot
        key, _, value = override.partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and value:
            checkpoint.check_writable_dir(Path(value), "run directory")
        if key == "hydra.run.dir" and value and not resume and not multirun:
            records.check_unowned(value, "offrl train")  # before Hydra writes its files there
    overrides = [_quote_path(o) for o in overrides]
    if not any(o in ("--cfg", "-c", "--info", "-i", "--hydra-help") for o in overrides):
        _check_overrides(overrides)
    sweep_dir = _sweep_dir(overrides) if multirun else None
    if sweep_dir is not None and not any(o.startswith("hydra.sweep.dir=") for o in overrides):
        overrides.append(_quote_path(f"hydra.sweep.dir={sweep_dir}"))
    started = time.time()
    entered = False
    status = 0
    sweep_parent = os.getpid()

    @hydra.main(version_base="1.3", config_path="pkg://offrl.conf", config_name="config")
    def task(cfg: DictConfig) -> None:
        nonlocal entered, status
        entered = True
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        if sweep_dir is None:
            status = _run(cfg, run_dir, started)
            return
        with catch_stop_signals("stopping after this step and saving a checkpoint"), _SweepJob(sweep_dir) as job:
            if job.stopped():
                print(f"offrl: {run_dir.name}: not started, the sweep was interrupted", file=sys.stderr)
                _remove_unused_run_dir(run_dir, started)
            elif continuing_sweep and records.RunDir(run_dir).results.is_file():
                print(f"offrl: {run_dir.name}: finished already ({records.RunDir(run_dir).results})")
            else:
                if continuing_sweep and records.RunDir(run_dir).last.is_file():
                    cfg = OmegaConf.merge(cfg, {"resume": str(run_dir)})
                status = max(status, _run(cfg, run_dir, started))
        if os.getpid() != sweep_parent:  # a launcher's worker process: the sweep's parent passes signals on
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    saved_argv, saved_handlers = sys.argv, list(logging.root.handlers)
    sys.argv = ["offrl train", *overrides]
    try:
        if sweep_dir is None:
            task()
        else:
            with catch_stop_signals("every job of the sweep stops after its step and saves a checkpoint; jobs not "
                                    "started are skipped", on_first=lambda signum: _SweepJob.stop_all(sweep_dir, signum)
                                    ) as stop:
                task()
            status = _sweep_summary(sweep_dir, stop.exit_status if stop.requested else status)
    except SystemExit as exit_:
        # Hydra exits 1 when composition fails (unknown group option, bad override): a user error.
        code = exit_.code if isinstance(exit_.code, int) else 1
        return 2 if code == 1 and not entered else code
    finally:
        sys.argv = saved_argv
        for handler in set(logging.root.handlers) - set(saved_handlers):  # Hydra's log file of this run
            logging.root.removeHandler(handler)
            handler.close()
        if sweep_dir is not None:
            _SweepJob.clear(sweep_dir)
    return status


def _run(cfg: DictConfig, run_dir: Path, started: float) -> int:
    """Train one run (a single run or a sweep's job) and print its outcome in one line; the exit status."""
    try:
        if cfg.resume:
            cfg = _resumed_config(cfg, Path(cfg.resume), HydraConfig.get().overrides.task)
        results = train(cfg, run_dir, build=ensure_recipe_dataset)
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        _remove_unused_run_dir(run_dir, started)
        return 2
    except (TrainingDiverged, Interrupted) as stop:
        return report_stop(stop, "offrl train")
    for one, where in zip(results["runs"], results["run_dirs"]) if "runs" in results else [(results, run_dir)]:
        score = one["normalized_score"]
        shown = "n/a (no reference returns)" if score is None else f"{score:.1f}"
        success = "" if one.get("success_rate") is None else f"success rate {one['success_rate']:.2f}, "
        who = f" seed {one['seed']}" if "runs" in results else ""
        print(f"offrl: {one['agent']} on {one['dataset']}{who}: {success}normalized score {shown}, "
              f"return {one['return_mean']:.1f} +- {one['return_std']:.1f} "
              f"after {one['steps']} steps ({one['wall_s']:.0f} s); results in {Path(where) / 'results.json'}")
    return 0


# ---------------------------------------------------------------------- sweeps
SWEEP_RECORD = "multirun.yaml"  # what Hydra writes into a sweep's directory: its overrides, launcher and config
SWEEP_STATE = ".offrl-sweep"  # in a sweep's directory while it runs: a file per job in progress (its pid) and,
# once the sweep is asked to stop, "stop"; removed when the sweep's command ends


class _SweepJob:
    """A sweep's job announces itself (its pid) to the sweep's parent, which passes a stop signal on to the jobs
    in progress and marks the sweep stopped, so that jobs not yet started are skipped; works for any launcher
    that runs the jobs on this machine (in the parent, in worker processes, through submitit_local)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.state = Path(sweep_dir) / SWEEP_STATE
        self.pid_file = self.state / f"job-{os.getpid()}"

    def __enter__(self) -> _SweepJob:
        self.state.mkdir(parents=True, exist_ok=True)
        self.pid_file.touch()
        return self

    def __exit__(self, *exc) -> None:
        self.pid_file.unlink(missing_ok=True)

    def stopped(self) -> bool:
        return STOP.requested or (self.state / "stop").exists()

    @staticmethod
    def stop_all(sweep_dir: Path, signum: int) -> None:
        state = Path(sweep_dir) / SWEEP_STATE
        state.mkdir(parents=True, exist_ok=True)
        (state / "stop").touch()
        for pid_file in state.glob("job-*"):
            pid = int(pid_file.name.removeprefix("job-"))
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)

    @staticmethod
    def clear(sweep_dir: Path) -> None:
        shutil.rmtree(Path(sweep_dir) / SWEEP_STATE, ignore_errors=True)


def _sweep_dir(overrides: list[str]) -> Path:
    """The directory the sweep will write (hydra.sweep.dir, resolved now: the default names the date and time)."""
    plain = [o for o in overrides if not o.startswith("-")]
    single = [o.input_line for o in OverridesParser.create().parse_overrides(plain) if not o.is_sweep_override()]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="offrl.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=single, return_hydra_config=True)
            return Path(OmegaConf.select(cfg, "hydra.sweep.dir"))
    except (HydraException, OmegaConfBaseException) as err:
        raise OffrlError(_composition_message(err)) from None
    finally:
        GlobalHydra.instance().clear()


def _sweep_overrides(sweep_dir: Path, overrides: list[str]) -> list[str]:
    """``resume=<sweep dir>``: the sweep's own overrides again (same jobs, same job directories) plus the ones
    given now that a resume accepts; each job then continues its run, starts it if it never started, or skips
    it if it finished."""
    try:
        record = OmegaConf.load(sweep_dir / SWEEP_RECORD)
        task_overrides = list(record.hydra.overrides.task)
        hydra_overrides = list(record.hydra.overrides.hydra)
    except Exception as err:  # omegaconf's and yaml's errors: the file is not a sweep record
        raise OffrlError(f"resume={sweep_dir}: cannot read {SWEEP_RECORD} ({_first_line(err)}); expected the "
                         "directory of an offrl train -m sweep") from None
    extra = []
    for override in overrides:
        key = override.lstrip("+").split("=", 1)[0]
        if key == "resume" or override in ("-m", "--multirun"):
            continue
        if key not in RESUME_ACCEPTS:
            raise OffrlError(f"resume={sweep_dir}: {override} would change the sweep's jobs; a resume may change only "
                             f"{', '.join(RESUME_ACCEPTS)}")
        extra.append(override)
    kept = [o for o in hydra_overrides if o.split("=", 1)[0] not in ("hydra.mode", "hydra.sweep.dir")]
    return ["-m", *kept, *task_overrides, *extra, _quote_path(f"hydra.sweep.dir={sweep_dir}")]


def _sweep_summary(sweep_dir: Path, status: int) -> int:
    """After a sweep: when a job did not finish, one line counting its jobs and the command that continues it."""
    jobs = [d for d in sorted(sweep_dir.iterdir()) if d.is_dir() and records.RunDir(d).config.is_file()]
    finished = sum(records.RunDir(d).results.is_file() for d in jobs)
    if finished == len(jobs) and status == 0:
        return status
    print(f"offrl: sweep {sweep_dir}: {finished} of {len(jobs)} started jobs finished; jobs not started were skipped; "
          f"continue the sweep with: offrl train resume={shlex.quote(str(sweep_dir))}", file=sys.stderr)
    return status or 1


TRAIN_OPTIONS = """\
  seed=N                     random seed (default 0)
  seeds=[0,1,2,3,4]          train these seeds in one process (offline agents; a run directory seed_<s>/ each)
  device=auto|cpu|cuda[:N]   where tensors live (auto: CUDA when present)
  threads=N                  torch CPU threads (default: the cores idle at start; threads=1 in parallel sweeps)
  env=ID                     evaluation / online gymnasium env (default: the one the dataset names)
  compile=true               torch.compile the agent's update (one graph per update; compile_mode=reduce-overhead
                             adds CUDA graphs on a GPU)
  precision=fp32|bf16|tf32|auto  what updates compute in: bf16 = matmuls in bf16 under autocast, weights, optimiser
                             and outputs fp32; tf32 on CUDA; auto: bf16 where measured faster (default fp32)
  resume=DIR                 continue the run in DIR from its last checkpoint (add trainer.steps=N to extend);
                             DIR a sweep's directory: continue its stopped jobs, start its skipped ones
  trainer.steps=N            gradient steps (offline) or environment steps (online)
  trainer.eval_every=N trainer.eval_episodes=N trainer.checkpoint_every=N trainer.log_every=N
  trainer.batch_size=N       batch size (default 256)
  trainer.num_envs=N trainer.warmup_steps=N trainer.updates_per_step=X   online
  trainer.pretrain_steps=N trainer.offline_fraction=X                    offline_to_online
  dataset.size=N             a smaller build of a generated dataset (stored under its own name)
  dataset.path=FILE | dataset.id=ID   your own D4RL hdf5 file | local Minari dataset
  dataset.reward_normalization=none|return_range   dataset.env_id=ID   dataset.ref_min_score/ref_max_score
  agent.<key>=VALUE          any hyperparameter of the agent (list them: offrl train agent=NAME --cfg job)
  hydra.run.dir=DIR          where the run is written (default runs/<date>/<time>_<agent>_<task>_seed<N>)
  -m KEY=A,B,...             a sweep (Hydra multirun); hydra/launcher=local|slurm to run jobs in parallel"""


def _train_help() -> str:
    def short(text: str, width: int = 78) -> str:
        text = " ".join(text.split()).rstrip(".")
        return text if len(text) <= width else text[: width - 3].rsplit(" ", 1)[0] + " ..."

    def yaml_line(group: str, name: str) -> str:
        text = files("offrl.conf").joinpath(group, f"{name}.yaml").read_text()
        return short(" ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#")))

    def agent_line(name: str) -> str:  # an agent's module docstring; a preset's yaml comment
        if name in AGENTS:
            return short(sys.modules[AGENTS[name].__module__].__doc__ or "")
        return yaml_line("agent", name)

    agents = "\n".join(f"  {name:<20} {agent_line(name)}" for name in _choices("agent"))
    trainers = "\n".join(f"  {name:<20} {yaml_line('trainer', name)}" for name in _choices("trainer"))
    datasets = textwrap.fill(", ".join(_choices("dataset")), width=100, initial_indent="  ", subsequent_indent="  ",
                             break_on_hyphens=False)
    return TRAIN_HELP.format(agents=agents, trainers=trainers, datasets=datasets, options=TRAIN_OPTIONS)


TRAIN_HELP = """usage: offrl train [KEY=VALUE ...]    (Hydra overrides)

Train an agent; writes checkpoints, TensorBoard logs, config.yaml and results.json into the run directory.

agents (agent=NAME; sac and pmoe train online and pick trainer=online themselves):
{agents}

datasets (dataset=NAME; generated ones are built on first use, see offrl datasets list):
{datasets}

trainers (trainer=NAME):
{trainers}

launchers for sweeps (hydra/launcher=NAME):
  local                parallel jobs on this machine (joblib, 2 at a time)
  slurm                SLURM through submitit (hydra.launcher.partition=..., gpus, cpus, mem, time)

main options:
{options}

examples:
  offrl train                                          # TD3+BC on idp-mixed, 20k steps (~1.5 min on CPU)
  offrl train agent=iql dataset=hopper-medium-replay seed=1
  offrl train agent=sac env=Hopper-v5 trainer.steps=300000
  offrl train agent=td3bc trainer=offline_to_online dataset=hopper-medium
  offrl train -m hydra/launcher=local threads=1 seed=0,1,2 agent=bc,td3bc
  offrl train resume=runs/2026-12-02/10-00-00_td3bc_idp-mixed_seed0 trainer.steps=40000
  offrl train agent=prdc --cfg job                     # print the composed config and exit

Hydra's own options: offrl train --hydra-help"""


def _check_overrides(overrides: list[str]) -> None:
    """Compose the config of every job the overrides describe (a sweep's first 64) and convert it to
    the typed configs, so a misspelt group option, an unknown key (with or without ``+``), a wrong
    type, a value out of range or a device this machine lacks is one line naming it, with the closest valid names,
    before Hydra creates any directory."""

    plain = [o for o in overrides if not o.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(plain)
    except HydraException as err:
        raise OffrlError(f"cannot parse the overrides: {_first_line(err)}") from None
    for override in parsed:
        if override.key_or_group in CHOICE_GROUPS and not override.is_delete():
            values = override.sweep_string_iterator() if override.is_sweep_override() else [override.value()]
            for value in values:
                _check_choice(override.key_or_group, str(value))
    # a single run applies the overrides as given, each in turn (a key given twice: both are checked); a sweep's
    # jobs get the last value of each key, as the sweeper gives them
    multirun = any(o in ("-m", "--multirun") for o in overrides)
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch][:64] if multirun else [plain]
    here = not any(o.startswith("hydra/launcher=") and "slurm" in o for o in plain)  # jobs run on this machine
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="offrl.conf", version_base="1.3"):
            for job in jobs:
                try:
                    cfg = compose(config_name="config", overrides=[o for o in job if not o.startswith("hydra.")])
                except (HydraException, OmegaConfBaseException) as err:
                    raise OffrlError(_composition_message(err)) from None
                if not cfg.get("resume"):
                    parse_config(cfg)
                if here:
                    check_precision(cfg.precision, resolve_device(cfg.device))
    finally:
        GlobalHydra.instance().clear()


CHOICE_GROUPS = {"agent": "agent", "dataset": "dataset", "trainer": "trainer", "hydra/launcher": "launcher",
                 "synthetic": "synthetic-data setting"}


def _choices(group: str) -> list[str]:
    folder = files("offrl.conf").joinpath(*group.split("/"))
    options = sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    return options + (["joblib", "basic", "submitit_slurm", "submitit_local"] if group == "hydra/launcher" else [])


def _check_choice(group: str, value: str) -> None:
    options = _choices(group)
    if value not in options:
        raise OffrlError(f"{group}={value} is not a known {CHOICE_GROUPS[group]}{_suggest(value, options)}; "
                         f"choices: {', '.join(options)}")


def _close(word: str, options) -> list[str]:
    return difflib.get_close_matches(word, list(options), n=3, cutoff=0.5)


def _suggest(word: str, options) -> str:
    close = _close(word, options)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _composition_message(err: BaseException) -> str:
    """One line for a Hydra composition error: the override, what is wrong, the closest valid keys."""
    text = str(err)
    cause = err.__cause__ or err.__context__
    key = re.search(r"Could not (?:override|append to config\. An item is already at) '([^']+)'", text)
    if key:
        name = key.group(1)
        reason = _first_line(cause) if cause is not None else text.splitlines()[-1]
        if "not in" in reason or "Key '" in reason:
            return _unknown_key_message(name)
        return f"{name}: {reason}"
    return f"{_first_line(err)}: {_first_line(cause)}" if cause is not None else _first_line(err)


def _unknown_key_message(dotted: str) -> str:
    group, _, key = dotted.partition(".")
    known = {"trainer": [f.name for f in fields(TrainerConfig)], "dataset": [f.name for f in fields(DatasetConfig)],
             "agent": sorted({f.name for cls in AGENTS.values() for f in fields(cls.config_class)})}
    if group in known:
        close = [f"{group}.{name}" for name in _close(key, known[group])]
    else:
        close = _close(dotted, [f.name for f in fields(RunConfig)] + list(known))
    article = "an" if group[:1] in "aeiou" else "a"
    what = f"{article} {group} option" if group in known else "an option"
    return f"{dotted} is not {what}" + (f"; did you mean {' or '.join(close)}?" if close else "")


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


# What ``resume=<dir>`` may change: how much longer the run trains, how it evaluates, logs and checkpoints, and
# where and how fast it runs. Everything else (agent, dataset, env, seed, network sizes, trainer mode, batch
# size, ...) defines the run: changing it is a new run.
RESUME_ACCEPTS = ("trainer.steps", "trainer.eval_every", "trainer.eval_episodes", "trainer.eval_envs",
                  "trainer.log_every", "trainer.checkpoint_every", "trainer.snapshot_policies", "threads", "device",
                  "compile", "compile_mode", "precision")


def _check_resumable(run_dir: Path, overrides: list[str]) -> None:
    """``resume=<dir>`` must name a run written by offrl train, and the overrides may change only the keys of
    RESUME_ACCEPTS (an override equal to the run's own value is no change); checked before anything is created."""
    try:
        base = OmegaConf.create(records.read_config(run_dir))
    except OffrlError as err:
        raise OffrlError(f"resume={run_dir}: {err}") from None
    for override in overrides:
        key, _, value = override.lstrip("+").partition("=")
        if not _ or key == "resume" or key.startswith("hydra.") or override.startswith("-") or key in RESUME_ACCEPTS:
            continue
        saved = base.get(key, {}).get("name") if key in GROUPS else OmegaConf.select(base, key, default=None)
        try:
            asked = value if key in GROUPS else OmegaConf.from_dotlist([f"v={value}"]).v
        except Exception:  # omegaconf's grammar errors: compared as text
            asked = value
        if asked != saved and str(asked) != str(saved):
            raise OffrlError(f"resume={run_dir}: {key}={value} would change the run's {key} ({saved}); a resume may "
                             f"change only {', '.join(RESUME_ACCEPTS)}; start a new run for that")
    state = records.read_checkpoint(records.RunDir(run_dir).last)  # exists, reads, and has this offrl's format
    if "stack" in state:
        raise OffrlError(f"resume={run_dir}: this seed was trained with others in one process; continue them "
                         f"together: offrl train resume={state['stack']}")


PATH_KEYS = ("resume", "hydra.run.dir", "hydra.sweep.dir")


def _quote_path(override: str) -> str:
    """A path override as a quoted Hydra string, so any path a user can create (spaces, commas, quotes, non-ASCII)
    reaches the run as it is; Hydra's grammar takes unquoted values as sweeps or refuses their characters."""
    key, sep, value = override.partition("=")
    if not sep or key not in PATH_KEYS or value[:1] in ("'", '"'):
        return override
    value = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)  # backslashes before a quote or the end
    return f"{key}='" + value.replace("'", "\\'") + "'"


def _remove_unused_run_dir(run_dir: Path, since: float) -> None:
    """A refused run leaves no directory behind: remove ``run_dir`` if it holds only what Hydra and
    the lock wrote in this invocation (no config.yaml, checkpoint or results), then empty parents."""
    if not run_dir.is_dir():
        return
    entries = list(run_dir.iterdir())
    ours = all(e.name in (".hydra", ".lock") or e.suffix == ".log" for e in entries)
    if not ours or any(e.stat().st_mtime < since - 1 for e in entries):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    cwd = Path.cwd().resolve()
    parent = run_dir.resolve().parent
    while parent != cwd and cwd in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _register_schemas() -> None:
    """Typed schemas for Hydra: the YAML files in conf/ extend them (``/schema/<group>/<name>@_here_``),
    so defaults live once, in the dataclasses, and a mistyped key or value fails at composition."""

    if not OmegaConf.has_resolver("task_name"):
        # run directories are named after what was trained on: the env for online runs, else the dataset
        OmegaConf.register_new_resolver("task_name", lambda mode, env, dataset: env if mode == "online" and env
                                        else dataset)
    if not OmegaConf.has_resolver("seed_label"):  # seed3, or seeds0-1-2 for seeds in one process
        OmegaConf.register_new_resolver("seed_label", lambda seed, seeds: f"seed{seed}" if seeds is None
                                        else "seeds" + "-".join(map(str, seeds)))
    store = ConfigStore.instance()
    for name, cls in AGENTS.items():
        store.store(group="schema/agent", name=name, node=cls.config_class)
    store.store(group="schema", name="dataset", node=DatasetConfig)
    store.store(group="schema", name="trainer", node=TrainerConfig)
    store.store(group="schema", name="synthetic", node=SyntheticConfig)


def _resumed_config(cfg, run_dir: Path, overrides: list[str]):
    """The config a run was started with, plus the overrides given now (checked by ``_check_resumable``)."""
    base = OmegaConf.create(records.read_config(run_dir))
    changes = [o.lstrip("+") for o in overrides if o.lstrip("+").split("=", 1)[0] in RESUME_ACCEPTS]
    return OmegaConf.merge(base, OmegaConf.from_dotlist(changes), {"resume": str(run_dir)})


