"""Updates/s of one agent's update, eager, one thread, on fixed random batches (no data, no env): the median and the
best of 7 blocks of 200 updates after 100 warm-up updates. Compares two trees of offrl side by side:

    for rep in 1 2 3; do for tree in /work/before /work/main; do for a in td3bc sac iql; do
      echo "$tree $(PYTHONPATH=$tree python benchmarks/bench_update_rate.py $a)"; done; done; done
"""
import statistics
import sys
import time

import torch

from offrl.agents import make_agent
from offrl.data.store import Batch

torch.set_num_threads(1)
name = sys.argv[1]
torch.manual_seed(0)
obs_dim, act_dim, n = 17, 6, 256
agent = make_agent({"name": name}, obs_dim, act_dim, "cpu")


def batch() -> Batch:
    return Batch(torch.randn(n, obs_dim), torch.rand(n, act_dim) * 2 - 1, torch.randn(n), torch.randn(n, obs_dim),
                 torch.zeros(n))



data = [batch() for _ in range(8)]
for i in range(100):
    agent.update(data[i % 8])
rates = []
for _ in range(7):
    t = time.perf_counter()
    for i in range(200):
        m = agent.update(data[i % 8])
    float(next(iter(m.values())).sum())
    rates.append(200 / (time.perf_counter() - t))
print(f"{name} median {statistics.median(rates):.1f} best {max(rates):.1f}")
