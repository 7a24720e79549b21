"""Where built datasets live: one hdf5 file per dataset and size in the cache directory. The data layer reads
these files; the generation layer (``offrl.generation``) writes them."""

from __future__ import annotations

import os
import re
from pathlib import Path


def cache_dir() -> Path:
    """``$OFFRL_DATA_DIR`` or ``~/.cache/offrl/datasets``."""
    return Path(os.environ.get("OFFRL_DATA_DIR", "~/.cache/offrl/datasets")).expanduser()


def cache_file(name: str, size: int | None = None) -> Path:
    """The file of dataset ``name``: its full build (``size`` None) or the build of ``size`` transitions."""
    return cache_dir() / f"{name}{'' if size is None else f'-{size}'}.hdf5"


def built_sizes(name: str) -> dict[int | None, Path]:
    """Every build of ``name`` in the cache: None -> the full-size file, N -> the build of N transitions."""
    out: dict[int | None, Path] = {}
    if cache_file(name).exists():
        out[None] = cache_file(name)
    pattern = re.compile(rf"^{re.escape(name)}-(\d+)\.hdf5$")
    for path in sorted(cache_dir().glob(f"{name}-*.hdf5")):
        match = pattern.match(path.name)
        if match:
            out[int(match.group(1))] = path
    return out
