"""A critic's output layer (one output per member) as a batched matmul or as a dot product per row, side by side.

    python benchmarks/bench_ensemble_head.py [--repeats 5] [--updates 10]

offrl.core.nets.EnsembleLinear computes a layer with one output as sum(x * w) + b; before, it was the same
``torch.baddbmm`` as the hidden layers. Part 1 times forward + backward of that layer alone, both ways, at the row
counts the agents use (batch 256, ReBRAC's 1024, CQL's 256 x 30 sampled actions; 2 and 10 members). Part 2 times whole
updates of TD3+BC, SAC, CQL and ReBRAC (their default networks, obs 17, act 6) with the layer computed each way,
alternating (``--repeats`` rounds, ``--updates`` updates each, the median round); one thread, CPU time of the process
(time.process_time: the machine's other jobs count less). Writes benchmarks/results/ensemble_head.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from offrl.agents import make_agent
from offrl.core.nets import EnsembleLinear
from offrl.core.runtime import cpu_model
from offrl.data.store import Batch

RESULTS = Path(__file__).parent / "results"
DOT = EnsembleLinear.forward


def as_matmul(self: EnsembleLinear, x: torch.Tensor, members=slice(None)) -> torch.Tensor:
    """The former forward: every layer, one output or many, as a batched matmul."""
    if self.weight.dim() == 3:
        return torch.baddbmm(self.bias[members], x, self.weight[members])
    return torch.matmul(x, self.weight[:, members]) + self.bias[:, members]


def seconds(fn, repeats: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def layer_times(members: int, rows: int, repeats: int) -> dict:
    layer = EnsembleLinear(members, 256, 1)
    x = torch.randn(members, rows, 256, requires_grad=True)
    grad = torch.randn(members, rows, 1)
    out = {}
    for name, forward in (("matmul", as_matmul), ("dot", DOT)):
        runs = [seconds(lambda f=forward: torch.autograd.backward(f(layer, x), grad), 20) for _ in range(repeats)]
        out[name] = statistics.median(runs) * 1e3
    return {"members": members, "rows": rows, "matmul_ms": out["matmul"], "dot_ms": out["dot"],
            "speedup": out["matmul"] / out["dot"]}


def update_rates(name: str, batch_size: int, repeats: int, updates: int) -> dict:
    torch.manual_seed(0)
    agent = make_agent({"name": name}, 17, 6)
    b = Batch(obs=torch.randn(batch_size, 17), actions=torch.rand(batch_size, 6) * 2 - 1,
              rewards=torch.randn(batch_size), next_obs=torch.randn(batch_size, 17), dones=torch.zeros(batch_size),
              next_actions=torch.rand(batch_size, 6) * 2 - 1, returns=torch.randn(batch_size))
    rates: dict[str, list[float]] = {"matmul": [], "dot": []}
    for _ in range(repeats):
        for way, forward in (("matmul", as_matmul), ("dot", DOT)):
            EnsembleLinear.forward = forward
            try:
                rates[way].append(1.0 / seconds(lambda: agent.update(b), updates))
            finally:
                EnsembleLinear.forward = DOT
    matmul, dot = statistics.median(rates["matmul"]), statistics.median(rates["dot"])
    return {"agent": name, "batch_size": batch_size, "matmul_updates_per_s": matmul, "dot_updates_per_s": dot,
            "ratio": dot / matmul}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--updates", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    layers = [layer_times(m, r, args.repeats) for m, r in ((2, 256), (2, 1024), (2, 7680), (10, 256))]
    agents = [update_rates(n, b, args.repeats, args.updates)
              for n, b in (("td3bc", 256), ("sac", 256), ("cql", 256), ("rebrac", 1024))]
    result = {"date": date.today().isoformat(), "cpu": cpu_model(), "threads": 1, "torch": torch.__version__,
              "command": "python benchmarks/bench_ensemble_head.py " + f"--repeats {args.repeats} --updates "
                         f"{args.updates}", "layer": layers, "updates": agents}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ensemble_head.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# A critic's output layer: batched matmul or dot product ({result['date']}, {result['cpu']}, 1 thread)",
             "", f"`{result['command']}`; medians of {args.repeats} alternating rounds, CPU time of the process.", "",
             "| members | rows | matmul fwd+bwd (ms) | dot fwd+bwd (ms) | speed-up |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['members']} | {r['rows']} | {r['matmul_ms']:.2f} | {r['dot_ms']:.2f} | {r['speedup']:.2f}x |"
              for r in layers]
    lines += ["", "| agent (batch) | updates/s, matmul head | updates/s, dot head | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {r['agent']} ({r['batch_size']}) | {r['matmul_updates_per_s']:.1f} | {r['dot_updates_per_s']:.1f} | "
              f"{r['ratio']:.2f}x |" for r in agents]
    (RESULTS / "ensemble_head.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
