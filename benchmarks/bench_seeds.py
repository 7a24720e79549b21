"""K seeds in one process (offrl.training.seeds.stack_agents) vs K seeds as separate processes: aggregate updates/s.

    python benchmarks/bench_seeds.py [--agent td3bc] [--ks 1 5 10] [--steps 300] [--threads 2] [--compile]

One run, side by side, on Hopper shapes (17, 6), batch 256 per seed, a 100k-row store:
  * stacked: K seeds in one process, one update of the stacked agent trains all K (threads 1 and
    ``--threads``);
  * sequential: K processes one after another, each one seed: the aggregate rate is one seed's rate
    (measured in a fresh process, at 1 and ``--threads`` threads);
  * parallel: two 1-thread processes at once, each one seed (the realistic alternative on 2 cores):
    aggregate = the sum of their rates.
Every configuration eager, or with ``--compile`` compiled (one graph per update). Prints
``seeds_speedup=<ratio>`` last: K = max(--ks) in one process (its better thread count) over the best
multi-process alternative. Records benchmarks/results/seeds_speed[_compiled].{json,md}, with where the time
of the largest stacked update goes (bench_roofline.profile: GEMMs, optimiser, other ATen ops, the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def store():
    from bench_roofline import store as random_store

    return random_store(17, 6, rows=100_000)


def updates_per_s(agent_name: str, k: int, steps: int, threads: int, compile_: bool) -> float:
    """Aggregate seed-updates/s of K seeds in this process (k = 1: one plain agent)."""
    from offrl.agents import make_agent
    from offrl.training.seeds import SeedBatches, stack_agents

    torch.set_num_threads(threads)
    data = store()
    agents = []
    for seed in range(k):
        torch.manual_seed(seed)
        agents.append(make_agent({"name": agent_name}, 17, 6))
        agents[-1].attach_dataset(data)
    if k == 1:
        agent, source = agents[0], data
    else:
        agent, source = stack_agents(agents), SeedBatches(data, list(range(k)))
        agent.attach_dataset(data)
    if compile_:
        agent.enable_compile()
    for _ in range(10):
        agent.update(source.sample(256))
    start = time.perf_counter()
    for _ in range(steps):
        metrics = agent.update(source.sample(256))
    float(next(iter(metrics.values())).sum())
    return k * steps / (time.perf_counter() - start)


def profile_stacked(agent_name: str, k: int) -> dict[str, float]:
    """Fractions of a K-seed eager update's time (1 thread) by category, as bench_roofline.profile splits them."""
    from bench_roofline import profile

    from offrl.agents import make_agent
    from offrl.training.seeds import SeedBatches, stack_agents

    torch.set_num_threads(1)
    data = store()
    agents = []
    for seed in range(k):
        torch.manual_seed(seed)
        agents.append(make_agent({"name": agent_name}, 17, 6))
    agent = stack_agents(agents)
    agent.attach_dataset(data)
    batches = SeedBatches(data, list(range(k)))
    for _ in range(10):
        agent.update(batches.sample(256))
    return profile(agent, batches, steps=20)  # it samples with .sample(256)


def in_subprocess(agent: str, k: int, steps: int, threads: int, compile_: bool) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, __file__, "--worker", agent, str(k), str(steps), str(threads),
                             str(int(compile_))], stdout=subprocess.PIPE, text=True, env=env)


def result(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"bench_seeds: a worker failed (exit {proc.returncode})")
    return float(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--profile":
        print(json.dumps(profile_stacked(sys.argv[2], int(sys.argv[3]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        agent, k, steps, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        print(updates_per_s(agent, k, steps, threads, sys.argv[6] == "1"))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default="td3bc")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--steps", type=int, default=300, help="timed updates per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="compile every configuration's update")
    args = parser.parse_args()
    thread_counts = sorted({1, args.threads})
    c = args.compile
    one_seed = {t: result(in_subprocess(args.agent, 1, args.steps, t, c)) for t in thread_counts}
    pair = [in_subprocess(args.agent, 1, args.steps, 1, c) for _ in range(2)]
    parallel = sum(result(p) for p in pair)
    stacked = {k: {t: result(in_subprocess(args.agent, k, max(args.steps // k, 20), t, c)) for t in thread_counts}
               for k in args.ks}
    split = json.loads(subprocess.run([sys.executable, __file__, "--profile", args.agent, str(max(args.ks))],
                                      capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    best_alternative = max(max(one_seed.values()), parallel)
    k_max = max(args.ks)
    speedup = max(stacked[k_max].values()) / best_alternative
    record = {"command": "python benchmarks/bench_seeds.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "agent": args.agent, "batch_per_seed": 256, "compile": c,
              "sequential_processes": {str(t): v for t, v in one_seed.items()},
              "two_parallel_1thread_processes": parallel,
              "one_process": {str(k): {str(t): v for t, v in row.items()} for k, row in stacked.items()},
              "seeds_speedup": speedup, f"time_split_k{max(args.ks)}_1thread_eager": split}
    RESULTS.mkdir(exist_ok=True)
    name = "seeds_speed_compiled" if c else "seeds_speed"
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2))
    lines = [f"# K seeds in one process vs separate processes ({args.agent}, aggregate seed-updates/s)", "",
             f"`{record['command']}`, {record['machine']}, {record['date']}; batch 256 per seed, Hopper shapes, "
             + ("compiled." if c else "eager."),
             "", "| configuration | " + " | ".join(f"{t} thread(s)" for t in thread_counts) + " |",
             "|---|" + "---:|" * len(thread_counts),
             "| K processes one after another (= one seed's rate) | "
             + " | ".join(f"{one_seed[t]:.1f}" for t in thread_counts) + " |",
             "| two 1-thread processes in parallel (sum) | " + f"{parallel:.1f} |" + " |" * (len(thread_counts) - 1)]
    lines += [f"| K = {k} in one process | " + " | ".join(f"{stacked[k][t]:.1f}" for t in thread_counts) + " |"
              for k in args.ks]
    lines += ["", f"Where the time of a K = {max(args.ks)} eager update goes (1 thread, torch.profiler): "
              + ", ".join(f"{key} {value:.0%}" for key, value in split.items()) + "."]
    lines += ["", f"seeds_speedup = {speedup:.2f} (K = {k_max} in one process over the best multi-process "
              f"alternative, {best_alternative:.1f})"]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:-4]))
    print(f"seeds_speedup={speedup:.2f}")


if __name__ == "__main__":
    main()
