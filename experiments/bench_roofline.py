"""Fraction of the roofline: how close one agent update comes to the machine's fp32 GEMM rate.

    python experiments/bench_roofline.py [--threads 1] [--steps 200] [--agents td3bc sac prdc odice]

For each agent: the FLOPs of one update (torch.utils.flop_counter.FlopCounterMode, forward and backward
matmuls), the measured fp32 GEMM rate at the same thread count (a 256-wide matmul chain of the update's
shapes, best of several), and the measured update time (sampling included, after warm-up). The
fraction = (FLOPs / GEMM rate) / update time: 1.0 means the update runs at the GEMM rate, the rest of
the time goes to elementwise ops, the optimiser, allocation and dispatch. Eager only for now (the
compiled column is the speed issue's next step). Records experiments/results/roofline.{json,md};
prints ``roofline_td3bc=<fraction>`` last.
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


def gemm_rate(threads: int, size: int = 256, batch: int = 256, repeats: int = 5) -> float:
    """fp32 FLOP/s of (batch x size) @ (size x size) products, the shape of the agents' hidden layers."""
    torch.set_num_threads(threads)
    a, w = torch.randn(batch, size), torch.randn(size, size)
    best = 0.0
    for _ in range(repeats):
        n = 2000
        start = time.perf_counter()
        for _ in range(n):
            a @ w
        elapsed = time.perf_counter() - start
        best = max(best, 2 * batch * size * size * n / elapsed)
    return best


def store(obs_dim: int, act_dim: int, rows: int = 20_000) -> TransitionStore:
    g = torch.Generator().manual_seed(0)
    out = TransitionStore(obs_dim, act_dim, rows)
    out.add(torch.randn(rows, obs_dim, generator=g), torch.rand(rows, act_dim, generator=g) * 2 - 1,
            torch.randn(rows, generator=g), torch.randn(rows, obs_dim, generator=g), torch.zeros(rows),
            torch.zeros(rows))
    return out


def measure(name: str, steps: int, obs_dim: int = 17, act_dim: int = 6) -> dict[str, float]:
    data = store(obs_dim, act_dim)
    agent = make_agent({"name": name}, obs_dim, act_dim)
    agent.attach_dataset(data)
    for _ in range(20):  # warm-up (and PRDC's KD-tree, O-DICE's first steps)
        agent.update(data.sample(256))
    with FlopCounterMode(display=False) as counter:
        agent.update(data.sample(256))
        agent.update(data.sample(256))  # two updates: agents with a delayed actor update every 2nd step
    flops = counter.get_total_flops() / 2
    start = time.perf_counter()
    for _ in range(steps):
        metrics = agent.update(data.sample(256))
    float(next(iter(metrics.values())))  # wait for the last update
    return {"flops_per_update": flops, "update_s": (time.perf_counter() - start) / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--agents", nargs="+", default=["td3bc", "sac", "prdc", "odice"])
    args = parser.parse_args()
    torch.manual_seed(0)
    rate = gemm_rate(args.threads)
    rows = []
    for name in args.agents:
        torch.set_num_threads(args.threads)
        m = measure(name, args.steps)
        fraction = m["flops_per_update"] / rate / m["update_s"]
        rows.append({"agent": name, **m, "updates_per_s": 1.0 / m["update_s"], "roofline_fraction": fraction})
        print(f"{name}: {m['flops_per_update'] / 1e9:.3f} GFLOP/update, {1 / m['update_s']:.1f} updates/s, "
              f"roofline fraction {fraction:.2f}", flush=True)
    record = {"command": "python experiments/bench_roofline.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "date": date.today().isoformat(), "threads": args.threads, "gemm_flops_per_s": rate,
              "batch": 256, "obs_dim": 17, "act_dim": 6, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "roofline.json").write_text(json.dumps(record, indent=2))
    lines = ["# Roofline fraction of one update (eager)", "",
             f"`{record['command']}`, {record['machine']}, {record['date']}, {args.threads} thread(s); "
             f"measured fp32 GEMM rate {rate / 1e9:.1f} GFLOP/s (256 x 256 x 256).", "",
             "| agent | GFLOP / update | updates/s | time at GEMM rate / measured |", "|---|---:|---:|---:|"]
    lines += [f"| {r['agent']} | {r['flops_per_update'] / 1e9:.3f} | {r['updates_per_s']:.1f} | "
              f"{r['roofline_fraction']:.2f} |" for r in rows]
    (RESULTS / "roofline.md").write_text("\n".join(lines) + "\n")
    td3bc = next((r for r in rows if r["agent"] == "td3bc"), rows[0])
    print(f"roofline_{td3bc['agent']}={td3bc['roofline_fraction']:.2f}")


if __name__ == "__main__":
    main()
