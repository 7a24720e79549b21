"""Atomic writes (checkpoints, run records, datasets, reports: a failed write is one line and keeps the previous
file), the random-number state checkpoints carry, and the lock on a run directory."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import pickle
import random
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    """``write(binary file)`` into a temp file beside ``path``, fsync, rename over ``path`` (``atomic_path``)."""
    with atomic_path(path, what) as tmp, open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_text(path: Path, text: str, what: str) -> None:
    """``text`` (UTF-8) into ``path`` atomically; a failure is one OffrlError naming the path."""
    write_atomic(Path(path), lambda handle: handle.write(text.encode()), what)


@contextmanager
def atomic_path(path: Path, what: str) -> Iterator[Path]:
    """A temp path beside ``path`` (same suffix, so writers that pick a format by it still do; this process's own)
    for the block to write; renamed over ``path`` when the block ends. A failed write (disk full, unwritable or
    read-only directory; torch and h5py report some of these as RuntimeError) removes the temp file, keeps the
    previous ``path`` and is one OffrlError naming it."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temp_files(path)
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        with contextlib.suppress(OSError):  # the directory itself may be unusable
            tmp.unlink(missing_ok=True)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip().splitlines()[0]
        kept = f"; the previous {what} {path} is intact" if path.is_file() else ""
        raise OffrlError(f"{path}: cannot write {what} ({reason}){kept}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _remove_stale_temp_files(path: Path) -> None:
    """Temp files of ``path`` left by writers that were killed (their process is gone)."""
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}"):
        pid = stale.name[len(path.stem) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            stale.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
