"""`offrl train seeds=[...]` end to end: K seeds in one process against K separate `offrl train` processes.

    python benchmarks/bench_seeds_train.py [--agent td3bc] [--dataset idp-mixed] [--k 5] [--steps 2000]

One run, side by side, each configuration a fresh `offrl train` process (start-up, data loading,
evaluation and checkpoints included, as a user runs it):
  * stacked: one process, `seeds=[0..K-1]`, 2 threads;
  * sequential: K processes one after another, `seed=<s>`, 2 threads;
  * parallel: K processes, two at a time, 1 thread each (the realistic alternative on 2 cores).
Wall-clock seconds of each, and each seed's final score from the stack next to the same seed trained
alone (the stack should reproduce it up to float rounding). Prints ``seeds_train_speedup=<ratio>`` last:
the best multi-process wall time over the stacked one. Records benchmarks/results/seeds_train.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def offrl_train(args: list[str], threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-m", "offrl.cli", "train", *args, f"threads={threads}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"offrl train failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")


def score(run_dir: Path) -> float:
    results = json.loads((run_dir / "results.json").read_text())
    return results["normalized_score"] if results["normalized_score"] is not None else results["return_mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="td3bc")
    parser.add_argument("--dataset", default="idp-mixed")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    args = parser.parse_args()
    seeds = list(range(args.k))
    common = [f"agent={args.agent}", f"dataset={args.dataset}", f"trainer.steps={args.steps}",
              f"trainer.eval_every={args.steps}", f"trainer.eval_episodes={args.eval_episodes}", "device=cpu"]
    wall, scores = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        finish(offrl_train([*common, f"seeds=[{','.join(map(str, seeds))}]", f"hydra.run.dir={tmp / 'stack'}"], 2))
        wall["stacked"] = time.perf_counter() - start
        scores["stacked"] = [score(tmp / "stack" / f"seed_{s}") for s in seeds]
        start = time.perf_counter()
        for s in seeds:
            finish(offrl_train([*common, f"seed={s}", f"hydra.run.dir={tmp / f'seq{s}'}"], 2))
        wall["sequential"] = time.perf_counter() - start
        scores["alone"] = [score(tmp / f"seq{s}") for s in seeds]
        start = time.perf_counter()
        for pair in (seeds[i:i + 2] for i in range(0, len(seeds), 2)):
            procs = [offrl_train([*common, f"seed={s}", f"hydra.run.dir={tmp / f'par{s}'}"], 1) for s in pair]
            for proc in procs:
                finish(proc)
        wall["parallel"] = time.perf_counter() - start
    best = min(wall["sequential"], wall["parallel"])
    speedup = best / wall["stacked"]
    record = {
        "command": "python benchmarks/bench_seeds_train.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        "date": date.today().isoformat(), "agent": args.agent, "dataset": args.dataset, "k": args.k,
        "steps": args.steps, "eval_episodes": args.eval_episodes, "wall_s": wall, "scores": scores,
        "seeds_train_speedup": speedup,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "seeds_train.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = "\n".join(f"| {name} | {seconds:.1f} | {args.k * args.steps / seconds:.1f} |"
                     for name, seconds in wall.items())
    per_seed = "\n".join(f"| {s} | {a:.2f} | {b:.2f} |" for s, a, b in zip(seeds, scores["stacked"], scores["alone"]))
    (RESULTS / "seeds_train.md").write_text(
        f"# offrl train seeds=[...] vs separate processes\n\n`{record['command']}`; {record['machine']}; "
        f"{record['date']}. {args.agent} on {args.dataset}, K = {args.k} seeds x {args.steps} updates, "
        f"one evaluation of {args.eval_episodes} episodes at the end; wall-clock seconds of whole "
        f"`offrl train` processes (start-up, loading, evaluation, checkpoints included).\n\n"
        f"| configuration | wall s | seed-updates/s |\n|---|---:|---:|\n{rows}\n\n"
        f"seeds_train_speedup (best multi-process wall time / stacked) = {speedup:.2f}\n\n"
        f"Final score of each seed, from the stack and trained alone:\n\n"
        f"| seed | stacked | alone |\n|---:|---:|---:|\n{per_seed}\n")
    print(json.dumps(wall))
    print(f"seeds_train_speedup={speedup:.3f}")


if __name__ == "__main__":
    main()
