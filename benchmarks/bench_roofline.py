"""Fraction of the roofline: how close one agent update comes to the machine's fp32 GEMM rate.

    python benchmarks/bench_roofline.py [--threads 1] [--steps 200] [--agents td3bc sac prdc odice] [--no-compile]

For each agent: the FLOPs of one update (torch.utils.flop_counter.FlopCounterMode, forward and backward
matmuls), the measured fp32 GEMM rate at the same thread count (a 256-wide matmul chain of the update's
shapes, best of several), and the measured update time (sampling included, after warm-up). The
fraction = (FLOPs / GEMM rate) / update time: 1.0 means the update runs at the GEMM rate, the rest of
the time goes to elementwise ops, the optimiser, allocation and dispatch. Each agent eager and with
``enable_compile()`` (one inductor graph per update, optimiser steps included; FLOPs counted on the eager
update, the same arithmetic). A profile of the eager update splits its time: GEMMs, the optimiser,
other ATen ops (elementwise, reductions, copies) and the rest of the wall time (Python, dispatch,
allocation). Records benchmarks/results/roofline.{json,md}; prints ``roofline_td3bc=<fraction>`` last
(the better of eager and compiled).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from offrl.agents import make_agent
from offrl.data.store import TransitionStore

RESULTS = Path(__file__).parent / "results"


def gemm_rate(threads: int, size: int = 256, batch: int = 256, repeats: int = 5,
              dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of (batch x size) @ (size x size) products in ``dtype`` (fp32; bf16 for benchmarks/bench_precision.py),
    the shape of the agents' hidden layers."""
    torch.set_num_threads(threads)
    a, w = torch.randn(batch, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    best = 0.0
    for _ in range(repeats):
        n = 2000
        start = time.perf_counter()
        for _ in range(n):
            a @ w
        elapsed = time.perf_counter() - start
        best = max(best, 2 * batch * size * size * n / elapsed)
    return best


def store(obs_dim: int, act_dim: int, rows: int = 20_000, device: str = "cpu") -> TransitionStore:
    """Random transitions (the benchmarks' data: their values do not change the time of an update)."""
    g = torch.Generator().manual_seed(0)
    out = TransitionStore(obs_dim, act_dim, rows, device=device)
    out.add(torch.randn(rows, obs_dim, generator=g), torch.rand(rows, act_dim, generator=g) * 2 - 1,
            torch.randn(rows, generator=g), torch.randn(rows, obs_dim, generator=g), torch.zeros(rows),
            torch.zeros(rows))
    return out


GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}


def category(op: str) -> str:
    if op in GEMM_OPS:
        return "gemm"
    if "adam" in op or op.startswith("aten::_foreach"):
        return "optimizer"
    return "other_aten"


def timed(agent, data: TransitionStore, steps: int) -> float:
    for _ in range(20):  # warm-up (compilation, PRDC's KD-tree, O-DICE's first steps)
        agent.update(data.sample(256))
    start = time.perf_counter()
    for _ in range(steps):
        metrics = agent.update(data.sample(256))
    float(next(iter(metrics.values())))  # wait for the last update
    return (time.perf_counter() - start) / steps


def profile(agent, data: TransitionStore, steps: int = 50) -> dict[str, float]:
    """Seconds per update by category: the self time of ATen ops, and the wall time they do not cover."""
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            agent.update(data.sample(256))
    wall = (time.perf_counter() - start) / steps
    split = {"gemm": 0.0, "optimizer": 0.0, "other_aten": 0.0}
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            split[category(event.key)] += event.self_cpu_time_total / 1e6 / steps
    split["python_dispatch_alloc"] = max(wall - sum(split.values()), 0.0)
    return {key: value / wall for key, value in split.items()}  # fractions of the (profiled) update time


def measure(name: str, steps: int, compile_: bool, obs_dim: int = 17, act_dim: int = 6) -> dict[str, float]:
    data = store(obs_dim, act_dim)
    torch.manual_seed(0)
    agent = make_agent({"name": name}, obs_dim, act_dim)
    agent.attach_dataset(data)
    for _ in range(4):
        agent.update(data.sample(256))
    with FlopCounterMode(display=False) as counter:
        agent.update(data.sample(256))
        agent.update(data.sample(256))  # two updates: agents with a delayed actor update every 2nd step
    out = {"flops_per_update": counter.get_total_flops() / 2, "eager_update_s": timed(agent, data, steps)}
    out["eager_time_split"] = profile(agent, data)
    if compile_:
        agent.enable_compile()
        out["compiled_update_s"] = timed(agent, data, steps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--agents", nargs="+", default=["td3bc", "sac", "prdc", "odice"])
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    args = parser.parse_args()
    torch.manual_seed(0)
    rate = gemm_rate(args.threads)
    rows = []
    for name in args.agents:
        torch.set_num_threads(args.threads)
        m = measure(name, args.steps, not args.no_compile)
        row = {"agent": name, **m}
        for mode in ("eager", "compiled"):
            if f"{mode}_update_s" in m:
                row[f"{mode}_updates_per_s"] = 1.0 / m[f"{mode}_update_s"]
                row[f"{mode}_roofline_fraction"] = m["flops_per_update"] / rate / m[f"{mode}_update_s"]
        row["roofline_fraction"] = max(row.get("compiled_roofline_fraction", 0.0), row["eager_roofline_fraction"])
        rows.append(row)
        print(f"{name}: {m['flops_per_update'] / 1e9:.3f} GFLOP/update, eager {row['eager_updates_per_s']:.1f} "
              f"updates/s (fraction {row['eager_roofline_fraction']:.2f})"
              + (f", compiled {row['compiled_updates_per_s']:.1f} (fraction {row['compiled_roofline_fraction']:.2f})"
                 if "compiled_update_s" in m else ""), flush=True)
    record = {"command": "python benchmarks/bench_roofline.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "date": date.today().isoformat(), "threads": args.threads, "gemm_flops_per_s": rate,
              "batch": 256, "obs_dim": 17, "act_dim": 6, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "roofline.json").write_text(json.dumps(record, indent=2))

    def cell(row: dict, key: str, fmt: str) -> str:
        return format(row[key], fmt) if key in row else "-"
    lines = ["# Roofline fraction of one update", "",
             f"`{record['command']}`, {record['machine']}, {record['date']}, {args.threads} thread(s); "
             f"measured fp32 GEMM rate {rate / 1e9:.1f} GFLOP/s (256 x 256 x 256). Fraction = time the update's "
             "FLOPs need at that rate / measured update time.", "",
             "| agent | GFLOP / update | eager updates/s | eager fraction | compiled updates/s | compiled fraction |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['agent']} | {r['flops_per_update'] / 1e9:.3f} | {r['eager_updates_per_s']:.1f} | "
              f"{r['eager_roofline_fraction']:.2f} | {cell(r, 'compiled_updates_per_s', '.1f')} | "
              f"{cell(r, 'compiled_roofline_fraction', '.2f')} |" for r in rows]
    lines += ["", "Where the eager update's time goes (torch.profiler self time of ATen ops; the rest of the wall "
              "time is Python, dispatch and allocation):", "",
              "| agent | GEMMs | optimiser | other ATen ops | Python / dispatch / allocation |",
              "|---|---:|---:|---:|---:|"]
    lines += ["| {agent} | {gemm:.0%} | {optimizer:.0%} | {other_aten:.0%} | {python_dispatch_alloc:.0%} |".format(
        agent=r["agent"], **r["eager_time_split"]) for r in rows]
    (RESULTS / "roofline.md").write_text("\n".join(lines) + "\n")
    td3bc = next((r for r in rows if r["agent"] == "td3bc"), rows[0])
    print(f"roofline_{td3bc['agent']}={td3bc['roofline_fraction']:.2f}")

if __name__ == "__main__":
    main()
