"""Atomic checkpoints, the random-number state they carry, and the lock on a run directory."""

from __future__ import annotations

import fcntl
import os
import pickle
import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from offrl.core.errors import OffrlError

# Bumped whenever the checkpoint layout changes; a checkpoint of another format is refused on resume.
FORMAT = 2


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file in the same directory, fsync, then rename: a crash or a kill during
    the write never leaves a torn file, and the previous checkpoint stays valid until the rename. A
    failed write (disk full, unwritable directory) is an OffrlError naming the path."""

    def write(handle) -> None:
        torch.save({"format": FORMAT, **state}, handle)

    write_atomic(path, write, "checkpoint")


def write_atomic(path: Path, write: Callable[[Any], None], what: str) -> None:
    """``write(binary file)`` into a temp file beside ``path``, fsync, rename over ``path``; a failure removes the
    temp file, keeps the previous ``path`` and is an OffrlError naming it."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError ("unexpected pos")
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the directory itself is unusable
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip().splitlines()[0]
        kept = f"; the previous {what} {path} is intact" if path.exists() else ""
        raise OffrlError(f"{path}: cannot write {what} ({reason}){kept}") from None


def load(path: Path) -> dict[str, Any]:
    """A checkpoint written by this offrl; a missing, truncated or foreign file is an OffrlError."""
    if not path.is_file():
        raise OffrlError(f"{path}: no checkpoint to resume from (expected the file a run writes there)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, AttributeError,
            ModuleNotFoundError) as err:
        raise OffrlError(f"{path}: checkpoint is truncated or unreadable ({type(err).__name__})") from None
    found = state.get("format") if isinstance(state, dict) else None
    if found != FORMAT:
        raise OffrlError(f"{path}: checkpoint format {found} was written by an incompatible offrl version; "
                         f"this offrl reads format {FORMAT}")
    return state


class RunLock:
    """An exclusive lock on a run directory (``.lock``, flock): a second process training into the
    same directory is refused instead of interleaving checkpoints. The OS drops the lock when the
    process ends, however it ends."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self.handle = None

    def __enter__(self) -> RunLock:
        check_writable_dir(self.path.parent, "run directory")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as err:
            raise OffrlError(f"{self.path.parent}: cannot write the run directory ({err.strerror or err})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise OffrlError(f"{self.path.parent}: another offrl process (pid {owner}) is training in this run "
                             "directory; wait for it or choose another hydra.run.dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()  # closing releases the flock
            self.handle = None


def check_writable_dir(path: Path, what: str) -> None:
    """``path`` is a directory offrl can create or write into: its nearest existing ancestor is a writable
    directory. Checked before anything is written, so a bad path is one line and leaves nothing behind."""
    path = Path(path).absolute()
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OffrlError(f"{path}: cannot create the {what}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OffrlError(f"{path}: cannot create the {what}: {ancestor} is not writable")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
