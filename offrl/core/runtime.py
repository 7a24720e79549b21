"""The machine a run uses: its torch device, its CPU threads, and what results.json records of its CPU."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from offrl.core.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` (auto: CUDA when present, else the CPU), refused in one line unless this machine
    has it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={name} is not a device offrl runs on; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but torch sees no CUDA device (torch {torch.__version__})")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name} but torch sees {torch.cuda.device_count()} CUDA device(s): cuda:0 to "
                          f"cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name} but torch sees no MPS device (Apple GPUs only); expected auto, cpu, cuda "
                          "or cuda:N")
    return device


def free_cores(window_s: float = 0.2) -> int:
    """Cores of this process's CPU set that are idle now, measured from /proc/stat over ``window_s``
    (busy time of all CPUs over the window); without /proc/stat, the whole CPU set."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        first = _cpu_times()
        time.sleep(window_s)
        second = _cpu_times()
    except (OSError, ValueError):
        return usable
    total, idle = (b - a for a, b in zip(first, second))
    busy_cores = (os.cpu_count() or usable) * (total - idle) / max(total, 1)
    return max(1, min(usable, round(usable - busy_cores)))


def _cpu_times() -> tuple[int, int]:
    """(total, idle + iowait) jiffies of all CPUs."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def flush_denormals() -> None:
    """Flush subnormal floats to zero on CPU (process-wide). Late in training Adam's second moments of tiny
    gradients underflow into subnormals, which x86 CPUs compute ~10x slower: measured on an O-DICE
    checkpoint of cube-single (25% of its optimiser-state entries subnormal), 2.3 -> 24.4 updates/s.
    The values flushed are below 1.2e-38; GPUs flush them already."""
    torch.set_flush_denormal(True)


def choose_threads(threads: int | None, log: Callable[[str], None] = print) -> int:
    """``threads`` if given, else the cores free at start (at least 1): torch's default (one thread per
    core) collapses when other processes share the cores (OpenMP threads spin waiting for each other;
    measured 8x slower with two other jobs on 2 cores, benchmarks/results/threads_under_load.md)."""
    if threads is not None:
        if threads <= 0:
            raise ConfigError(f"threads={threads} must be a positive number of torch CPU threads (or null: auto)")
        return threads
    chosen = free_cores()
    log(f"offrl: threads=auto: {chosen} torch thread(s) for the {chosen} free of "
        f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores")
    return chosen


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else ``platform.processor()``), kept in results.json: float
    results, and so a seed's learning curve, differ between CPU types (e.g. AVX2 and AVX-512 kernels)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
