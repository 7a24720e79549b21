"""Finding runs and reading them: a finished run from its ``results.json``, a run in progress from its
``config.yaml`` and ``checkpoints/last.pt``; and the labels runs are grouped and ordered by."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offrl.agents import AGENTS
from offrl.core import records
from offrl.core.errors import OffrlError

IN_PROGRESS = "in progress"


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
        return finite(value)

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """(x, value) per evaluation; x = global_step (steps of all phases so far), or step in runs
        written before evaluations carried it (single-phase runs, where the two agree)."""
        points = []
        for entry in self.eval_history:
            value = finite(entry.get(metric))
            x = entry.get("global_step", entry.get("step"))
            if value is not None and x is not None:
                points.append((int(x), value))
        return points


def finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def find_runs(roots: Sequence[Path]) -> list[Run]:
    """Every run under ``roots`` (each a run directory or a folder of them, searched recursively)."""
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
    if records.RESULTS_FILE in files:
        return True
    return (records.CONFIG_FILE in files and records.RunDir(folder).last.is_file()
            and _read_config(folder).get("seeds") is None)


def _read_config(folder: Path) -> dict[str, Any]:
    """The run's config.yaml, or {} where it is missing or unreadable (a report still reads its results)."""
    try:
        return records.read_config(folder)
    except OffrlError:
        return {}


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
    results_path = records.RunDir(folder).results
    if results_path.is_file():
        results = records.read_results(folder)
        history = results.get("eval_history") or []
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise OffrlError(f"{results_path}: 'eval_history' is not a list of evaluations")
        dataset = results.get("dataset") or results.get("env_id") or _config_get(config, "dataset.name") or "?"
        seed = results.get("seed", config.get("seed"))
        mode = _config_get(config, "trainer.mode") or _mode_from_phases(results.get("phase_steps"), history)
        return Run(folder, results["agent"], str(dataset), seed if isinstance(seed, int) else None, "finished",
                   results, history, mode, results.get("steps"), config=config)

    state = records.read_checkpoint(records.RunDir(folder).last)
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


def agent_label(run: Run, by: str | None) -> str:
    """The agent label a run is grouped under: its agent, or with ``by`` (dotted config keys, comma-separated)
    ``agent[v1,v2]`` with the run's values of those keys (``?`` where its config lacks one)."""
    if not by:
        return run.agent
    values = [_config_get(run.config, key) for key in by.split(",")]
    shown = ["?" if v is None else Path(v).name if isinstance(v, str) and "/" in v else str(v) for v in values]
    return f"{run.agent}[{','.join(shown)}]"  # a path (synthetic.model) by its last part


def agent_key(label: str) -> tuple[int, str]:
    """Sort key of an agent label: agents in the order of the registry (``offrl.agents.AGENTS``), then agents
    it does not know; a label of ``--by`` (``agent[values]``) sorts by its agent, then by the whole label."""
    order = list(AGENTS)
    name = label.split("[")[0]
    return (order.index(name) if name in AGENTS else len(order), label)
