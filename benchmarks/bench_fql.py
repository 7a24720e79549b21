"""Updates/s of FQL beside IQL at the FQL paper's network sizes, measured side by side in one process.

    python benchmarks/bench_fql.py [--seconds 20] [--device cpu] [--compile] [--threads 1]

Both agents get 4 x 512 networks (FQL's defaults; IQL as the FQL repository's baseline config: 4 x 512, LayerNorm),
batches of 256 and OGBench cube-single's dimensions (28-dim observations, 5-dim actions) on fixed random batches (no
data, no env). After 10 warm-up updates each (compilation included with --compile), the two alternate blocks of 10
updates until --seconds have passed; each prints the median and the best block rate, so both see the same machine
state. FQL's update holds 10 Euler steps of its flow network on top of three networks' backward passes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from offrl.agents import make_agent
from offrl.data.store import Batch

OBS, ACT, ROWS, BLOCK = 28, 5, 256, 10
NETS = [512, 512, 512, 512]
AGENTS = {"fql": {"name": "fql"},
          "iql": {"name": "iql", "hidden_dims": NETS, "layer_norm": True, "expectile": 0.9, "beta": 10.0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed wall-clock budget for both agents together")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile each agent's update")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = [Batch(torch.randn(ROWS, OBS), torch.rand(ROWS, ACT) * 2 - 1, torch.randn(ROWS), torch.randn(ROWS, OBS),
                  torch.zeros(ROWS)).map(lambda x: x.to(args.device)) for _ in range(4)]
    agents = {name: make_agent(cfg, OBS, ACT, args.device) for name, cfg in AGENTS.items()}
    for agent in agents.values():
        if args.compile:
            agent.enable_compile()
        run_block(agent, data, args.device)
    rates: dict[str, list[float]] = {name: [] for name in agents}
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end or not all(rates.values()):
        for name, agent in agents.items():
            rates[name].append(BLOCK / run_block(agent, data, args.device))
    print(f"device {args.device}, threads {args.threads}, compile {args.compile}, batch {ROWS}, networks 4 x 512")
    for name, values in rates.items():
        print(f"{name}: median {statistics.median(values):.2f} updates/s, best {max(values):.2f} "
              f"({len(values)} blocks of {BLOCK})")


def run_block(agent, data: list[Batch], device: str) -> float:
    """Seconds for BLOCK updates, the last metrics read back (so queued GPU work is included)."""
    tick = time.perf_counter()
    for i in range(BLOCK):
        metrics = agent.update(data[i % len(data)])
    float(next(iter(metrics.values())).sum())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - tick


if __name__ == "__main__":
    main()
