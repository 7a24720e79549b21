"""The machine a run uses: its torch device, its CPU threads, its precision, and what results.json records of its
CPU."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from offrl.core.errors import ConfigError
from offrl.core.precision import PRECISIONS, Precision


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


# bf16 arithmetic in hardware: x86 AVX-512 BF16 (Zen 4, Cooper Lake, Sapphire Rapids) and AMX-BF16, Arm's BF16
# extension (/proc/cpuinfo names the last "bf16"); without them torch converts bf16 to fp32 around fp32 arithmetic
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
AUTO_BF16_SPEEDUP = 1.25  # precision=auto takes bf16 where its matmuls run at least this much faster than fp32's:
# the margin pays for the casts autocast adds and for the timing noise of a 50 ms measurement


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (/proc/cpuinfo: x86 ``flags``, Arm ``Features``); None where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def bf16_unsupported(device: torch.device) -> str | None:
    """Why ``device`` cannot compute in bf16 (no bf16 arithmetic in hardware: torch would emulate it, slower than
    fp32), or None where it can."""
    if device.type == "cpu":
        flags = cpu_flags()
        if flags is None:  # no /proc/cpuinfo (macOS, Windows): oneDNN's own check
            native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        else:
            native = bool(flags & set(CPU_BF16_FLAGS))
        return None if native else (f"this CPU ({cpu_model()}) has no bf16 instructions ({', '.join(CPU_BF16_FLAGS)}),"
                                    " so torch would emulate bf16, slower than fp32")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"{torch.cuda.get_device_name(device)} has no bf16 arithmetic (CUDA GPUs have it from Ampere, sm_80)"
    try:  # mps: bf16 from macOS 14
        torch.ones(2, 2, dtype=torch.bfloat16, device=device) @ torch.ones(2, 2, dtype=torch.bfloat16, device=device)
    except (RuntimeError, TypeError) as err:
        return f"{device} cannot multiply bf16 tensors ({str(err).splitlines()[0]})"
    return None


def tf32_unsupported(device: torch.device) -> str | None:
    """Why ``device`` has no TF32 matmuls (only CUDA GPUs from Ampere, sm_80, do), or None."""
    if device.type != "cuda":
        return f"TF32 is a mode of CUDA tensor cores and this run is on {device.type}"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return f"{torch.cuda.get_device_name(device)} has no TF32 tensor cores (CUDA GPUs have them from Ampere, sm_80)"
    return None


def check_precision(requested: str, device: torch.device) -> None:
    """A ConfigError (one line) unless ``device`` can compute in ``requested`` (fp32 | bf16 | tf32 | auto)."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision={requested}: expected one of {', '.join(PRECISIONS)}")
    why = {"bf16": bf16_unsupported, "tf32": tf32_unsupported}.get(requested, lambda _: None)(device)
    if why is not None:
        raise ConfigError(f"precision={requested}: {why}; expected precision=fp32 or auto")


def bf16_speedup(device: torch.device, size: int = 256, rounds: int = 3, count: int = 8) -> float:
    """How many times faster ``device`` multiplies bf16 than fp32 matrices, at the agents' shape (a batch of
    ``size`` rows through a ``size``-wide layer) and torch's present thread count: the best of ``rounds``
    alternating timings of ``count`` products each (about 50 ms on a CPU)."""
    def rate(dtype: torch.dtype) -> float:
        a = torch.randn(size, size, device=device).to(dtype)
        w = torch.randn(size, size, device=device).to(dtype)
        (a @ w).sum().item()  # warm-up: kernel selection, JIT
        start = time.perf_counter()
        for _ in range(count):
            out = a @ w
        out.sum().item()  # waits for an asynchronous device
        return count / (time.perf_counter() - start)

    best = {torch.float32: 0.0, torch.bfloat16: 0.0}
    for _ in range(rounds):
        for dtype in best:
            best[dtype] = max(best[dtype], rate(dtype))
    return best[torch.bfloat16] / best[torch.float32]


def resolve_precision(requested: str, device: torch.device, log: Callable[[str], None] = print) -> Precision:
    """What a run computes in: fp32, bf16 or tf32 as asked (refused in one line where ``device`` lacks it), or for
    ``auto`` bf16 where the device has bf16 arithmetic and multiplies bf16 at least AUTO_BF16_SPEEDUP times as fast
    as fp32 (measured, ``bf16_speedup``), else tf32 on a CUDA GPU that has it, else fp32; auto's choice is printed
    (after the thread choice: the measurement runs on the threads chosen)."""
    check_precision(requested, device)
    if requested != "auto":
        return Precision(requested, device.type)
    why_not = bf16_unsupported(device)
    speedup = None if why_not is not None else bf16_speedup(device)
    if speedup is not None and speedup >= AUTO_BF16_SPEEDUP:
        chosen, reason = "bf16", f"bf16 matmuls run {speedup:.1f}x as fast as fp32"
    else:
        if why_not is None:
            why_not = f"bf16 matmuls run {speedup:.2f}x as fast as fp32, under the {AUTO_BF16_SPEEDUP}x that pays"
        chosen = "fp32" if tf32_unsupported(device) else "tf32"
        reason = why_not
    where = f"{device.type}, {torch.get_num_threads()} thread(s)" if device.type == "cpu" else str(device)
    log(f"offrl: precision=auto: {chosen} ({reason}; {where})")
    return Precision(chosen, device.type)
