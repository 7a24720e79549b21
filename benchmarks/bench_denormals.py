"""Subnormal floats on CPU: updates/s of a trained agent with and without flush-to-zero, one run.

    python benchmarks/bench_denormals.py benchmarks/runs/cube_single/odice_cube-single-play-task1_s1

Loads the run's last checkpoint (agent and optimiser state), counts the subnormal entries in its parameters
and optimiser state, and times 20 updates on random batches of its shapes with torch.set_flush_denormal
off, on, off again (1 thread). Writes benchmarks/results/denormals.{json,md}.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

from offrl.agents import make_agent
from offrl.data.store import TransitionStore

RESULTS = Path(__file__).parent / "results"
SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def subnormal(tensors) -> tuple[int, int]:
    tensors = [t for t in tensors if torch.is_tensor(t) and t.is_floating_point() and t.dim() > 0]
    return sum(int(((t.abs() < SMALLEST_NORMAL) & (t != 0)).sum()) for t in tensors), sum(t.numel() for t in tensors)


def main() -> None:
    run = Path(sys.argv[1])
    torch.set_num_threads(1)
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    obs_dim, act_dim = ck["run"]["obs_dim"], ck["run"]["act_dim"]
    agent = make_agent(ck["config"]["agent"], obs_dim, act_dim)
    agent.load_state_dict(ck["agent"])
    agent.load_optimizer_state(ck["optimizers"])
    params = subnormal(agent.parameters())
    state = subnormal(v for opt in agent.optimizers.values() for s in opt.state.values() for v in s.values())
    g = torch.Generator().manual_seed(0)
    n = 50_000
    store = TransitionStore(obs_dim, act_dim, n)
    store.add(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1,
              torch.randn(n, generator=g) * 0.01, torch.randn(n, obs_dim, generator=g), torch.zeros(n), torch.zeros(n))
    rates = []
    for flush in (False, True, False):
        torch.set_flush_denormal(flush)
        for _ in range(3):
            agent.update(store.sample(256))
        start = time.perf_counter()
        for _ in range(20):
            agent.update(store.sample(256))
        rates.append({"flush_denormal": flush, "updates_per_s": 20 / (time.perf_counter() - start)})
    record = {"command": "python benchmarks/bench_denormals.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(), "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
              "agent": ck["config"]["agent"]["name"], "subnormal_parameters": params,
              "subnormal_optimizer_state": state, "rates": rates}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "denormals.json").write_text(json.dumps(record, indent=2))
    lines = [f"# Subnormal floats: {record['agent']} from `{run}` ({record['date']})", "",
             f"`{record['command']}`, {record['machine']}.", "",
             f"Subnormal entries: parameters {params[0]} of {params[1]}, optimiser state {state[0]} of {state[1]}.", "",
             "| flush-to-zero | updates/s |", "|---|---:|"]
    lines += [f"| {'on' if r['flush_denormal'] else 'off'} | {r['updates_per_s']:.1f} |" for r in rates]
    (RESULTS / "denormals.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
