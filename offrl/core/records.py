"""What a run writes, in one place: the run directory's layout, ``results.json``, ``config.yaml`` and the record of
the run inside its checkpoints. Training writes them through this module; evaluation, export, reports, dataset
generation and the command line read them through it.

A run directory::

    config.yaml              the resolved configuration (what ``resume=`` continues)
    results.json             the results of a finished run (``RECORD_FORMAT``; see ``write_results``)
    checkpoints/last.pt      everything a resume needs (``offrl.core.checkpoint``), with a ``run`` record (``RunInfo``)
    checkpoints/best.pt      the policy of the best evaluation, with its ``eval`` entry
    snapshots/step_N.pt      the policy at every evaluation (``trainer.snapshot_policies=true``)
    tb/                      TensorBoard scalars
    eval_<checkpoint>.json   offrl eval's results
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from offrl.core import checkpoint
from offrl.core.errors import OffrlError

# results.json's "record_format": bumped when a key changes meaning or goes away. Files written before the field
# existed (2026-12 and earlier) are read as format 0, which holds the same keys.
RECORD_FORMAT = 1
CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"


class RunDir:
    """The files of one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def results(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    def holds_run(self) -> bool:
        """True when a run was written here (its config, checkpoint or results): the directory belongs to it."""
        return self.config.is_file() or self.last.is_file() or self.results.is_file()

    def snapshot(self, global_step: int) -> Path:
        return self.root / "snapshots" / f"step_{global_step:08d}.pt"

    def checkpoints(self) -> list[str]:
        """The checkpoints this run holds, by name: last, best, step_N."""
        names = [name for name in ("last", "best") if (self.root / "checkpoints" / f"{name}.pt").is_file()]
        folder = self.root / "snapshots"
        for snapshot in sorted(folder.glob("step_*.pt")) if folder.is_dir() else []:
            match = re.fullmatch(r"step_(\d+)\.pt", snapshot.name)
            if match:
                names.append(f"step_{int(match.group(1))}")
        return names

    def checkpoint(self, which: str) -> Path:
        """The file of checkpoint ``which`` (last | best | step_N); a missing run or checkpoint, or an unknown
        name, is an OffrlError listing the checkpoints the run has."""
        if not self.root.is_dir():
            what = "is not a directory" if self.root.exists() else "does not exist"
            raise OffrlError(f"{self.root}: the run directory {what}; expected a directory written by offrl train")
        available = self.checkpoints()
        shown = ", ".join(available) if available else "none"
        if which in ("last", "best"):
            path = self.last if which == "last" else self.best
        else:
            match = re.fullmatch(r"step_(\d+)", which)
            if not match:
                raise OffrlError(f"--checkpoint={which} is not last, best or step_N (N a global step); "
                                 f"checkpoints in {self.root}: {shown}")
            path = self.snapshot(int(match.group(1)))
        if not path.is_file():
            if not available:
                raise OffrlError(f"{self.root}: holds no checkpoint (no checkpoints/last.pt, checkpoints/best.pt or "
                                 "snapshots/step_N.pt); expected a run directory written by offrl train")
            raise OffrlError(f"{self.root}: no checkpoint '{which}' ({path.relative_to(self.root)} not found); "
                             f"this run has: {shown}")
        return path


def check_unowned(run_dir: str | Path, command: str) -> None:
    """A directory that holds a run belongs to that run: a new run there would overwrite it. ``command`` is the
    one that continues it (``offrl train``, ``offrl diffusion train``)."""
    if RunDir(run_dir).holds_run():
        raise OffrlError(f"{run_dir} holds a run already; continue it with: {command} "
                         f"resume={shlex.quote(str(run_dir))} (with more steps if you like), or train into "
                         "another directory")


def canonical_checkpoint(which: str) -> str:
    """step_00000010 and step_10 name one snapshot (and one eval_step_10.json)."""
    step = re.fullmatch(r"step_(\d+)", which)
    return f"step_{int(step.group(1))}" if step else which


@dataclass
class RunInfo:
    """The ``run`` record every checkpoint carries: what a tool needs to rebuild and run the policy without the
    dataset (offrl eval, export, report)."""

    agent: str  # the learner's name (agent registry name, or trajectory-model)
    obs_dim: int
    act_dim: int
    device: str
    env_id: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    dataset: str | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: Path | str) -> RunInfo:
        missing = [f.name for f in fields(cls) if f.name in ("agent", "obs_dim", "act_dim", "device")
                   and f.name not in values]
        if missing:
            raise OffrlError(f"{where}: the checkpoint's run record lacks {missing}; it was written by an older offrl")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- results.json
def write_results(run_dir: str | Path, results: dict[str, Any]) -> Path:
    """``results`` as ``<run_dir>/results.json`` with the record format, written atomically (a temp file renamed
    into place); a failed write is an OffrlError naming the file."""
    path = RunDir(run_dir).results
    checkpoint.write_text(path, json.dumps({"record_format": RECORD_FORMAT, **results}, indent=2) + "\n", "run record")
    return path


def read_results(run_dir: str | Path) -> dict[str, Any]:
    """A finished run's results.json; an unreadable file, a file of another program or of a later record format
    is an OffrlError naming it."""
    path = RunDir(run_dir).results
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise OffrlError(f"{path}: unreadable results file ({reason}); expected the JSON offrl train writes") from None
    if not isinstance(results, dict) or not isinstance(results.get("agent"), str):
        raise OffrlError(f"{path}: not an offrl results file (no 'agent' key); expected the JSON offrl train writes")
    found = results.get("record_format", 0)
    if not isinstance(found, int) or found > RECORD_FORMAT:
        raise OffrlError(f"{path}: results record format {found} was written by a later offrl; this offrl reads "
                         f"formats 0 to {RECORD_FORMAT}")
    return results


# ---------------------------------------------------------------------- config.yaml
def write_config(run_dir: str | Path, config: dict[str, Any]) -> Path:
    path = RunDir(run_dir).config
    checkpoint.write_text(path, OmegaConf.to_yaml(config), "run record")
    return path


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's resolved configuration; a missing or damaged config.yaml is an OffrlError naming it."""
    path = RunDir(run_dir).config
    if not path.is_file():
        what = "does not exist" if not path.parent.exists() else f"holds no run ({path.name} not found)"
        raise OffrlError(f"{path.parent}: the directory {what}; expected a run directory written by offrl train")
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:  # a damaged YAML file: any of yaml's or omegaconf's errors
        raise OffrlError(f"{path}: not readable YAML ({_first_line(err)})") from None
    if not isinstance(config, dict):
        raise OffrlError(f"{path}: expected a mapping of configuration keys")
    return config


# ---------------------------------------------------------------------- checkpoints
def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint of a run (``offrl.core.checkpoint.load``: missing, truncated or foreign files are one line)."""
    return checkpoint.load(Path(path))


def run_info(state: dict[str, Any], where: Path | str) -> RunInfo:
    if "run" not in state:
        raise OffrlError(f"{where}: the checkpoint holds no run record; it was written by an older offrl")
    return RunInfo.from_dict(state["run"], where)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
