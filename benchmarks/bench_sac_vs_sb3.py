"""SAC environment steps per second on Hopper-v5: offrl vs stable-baselines3, same hyperparameters
(card C.3: Adam 3e-4, batch 256, 256x256, tau 0.005, gamma 0.99, auto temperature with target -|A|,
one update per env step), same thread count, timed over the same two windows: from the first update (after
``--warmup`` random steps; compilation and JIT fall inside) and steady (from ``--settle`` env steps later).

    python benchmarks/bench_sac_vs_sb3.py --steps 5000 [--warmup 1000] [--settle 1000] [--threads 2]
        [--device cuda] [--compile] [--precisions fp32 bf16] [--sbx-python VENV/bin/python]

Needs stable-baselines3 (pip install -e '.[bench]'). ``--compile`` adds offrl with compile=true (one
graph per update part); ``--sbx-python`` adds SBX (sbx-rl, JAX) run by benchmarks/sbx_worker.py in its own
venv (python -m venv V && V/bin/pip install sbx-rl 'gymnasium[mujoco]' 'mujoco<3.12'). The ratios use
offrl's faster configuration in each window. Prints the table and writes benchmarks/results/sac_vs_sb3_speed.{json,md}.
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

import torch

HERE = Path(__file__).resolve().parent


def bench_sb3(env_id: str, steps: int, warmup: int, settle: int, seed: int, device: str) -> dict:
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    marks: dict[int, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in (warmup, warmup + settle, steps):
                marks[self.num_timesteps] = time.perf_counter()
            return True

    model = SAC("MlpPolicy", gym.make(env_id), learning_rate=3e-4, buffer_size=1_000_000, learning_starts=warmup,
                batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs={"net_arch": [256, 256]}, device=device, seed=seed, verbose=0)
    model.learn(total_timesteps=steps, callback=Clock())
    return windows(marks, steps, warmup, settle)


def windows(marks: dict[int, float], steps: int, warmup: int, settle: int) -> dict:
    """env steps/s over the two windows: from the first update (warmup) and steady (from warmup + settle) to the
    end; ``marks``: the clock at those env steps."""
    return {"env_steps_per_s": (steps - warmup) / (marks[steps] - marks[warmup]),
            "steady_env_steps_per_s": (steps - warmup - settle) / (marks[steps] - marks[warmup + settle]),
            "window_s": marks[steps] - marks[warmup]}


def bench_sbx(python: str, env_id: str, steps: int, warmup: int, settle: int, seed: int, threads: int) -> dict:
    env = dict(os.environ)
    if threads == 1:  # XLA's CPU thread pool, the counterpart of torch's threads
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    out = subprocess.run([python, str(HERE / "sbx_worker.py"), env_id, str(steps), str(warmup), str(seed), str(settle)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_offrl(env_id: str, steps: int, warmup: int, settle: int, seed: int, device: str, compile_: bool,
                precision: str = "fp32") -> dict:
    from offrl.training import trainer
    from offrl.training.run import train

    cfg = {"seed": seed, "device": device, "compile": compile_, "precision": precision, "env": env_id,
           "agent": {"name": "sac"},
           "trainer": {"mode": "online", "steps": steps, "warmup_steps": warmup, "eval_every": 10**9,
                       "eval_episodes": 1, "checkpoint_every": 10**9}}
    marks: dict[int, float] = {}
    periodic = trainer.Trainer.periodic

    def clocked(self, phase, previous):  # the clock after env step n and its updates (SB3's callback: after step n)
        if phase.step in (warmup, warmup + settle, steps):
            marks[phase.step] = time.perf_counter()
        periodic(self, phase, previous)

    trainer.Trainer.periodic = clocked
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            results = train(cfg, run_dir)
    finally:
        trainer.Trainer.periodic = periodic
    return {**windows(marks, steps, warmup, settle), "updates_per_s": results["updates_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="total env steps per contender")
    parser.add_argument("--warmup", type=int, default=1000, help="random steps before learning (not timed)")
    parser.add_argument("--settle", type=int, default=1000,
                        help="env steps after the warm-up before the steady window (compilation / JIT falls in them)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for both contenders")
    parser.add_argument("--compile", action="store_true", help="also offrl with torch.compile (compile=true)")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                        help="offrl's precision=... (bf16: mixed precision, docs/guide/precision.md)")
    parser.add_argument("--sbx-python", help="the python of a venv with sbx-rl: adds SBX")
    parser.add_argument("--out", default=str(HERE / "results" / "sac_vs_sb3_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for precision in args.precisions:
        label = "" if precision == "fp32" else f" precision={precision}"
        results["offrl" + label] = bench_offrl(args.env, args.steps, args.warmup, args.settle, args.seed, args.device,
                                               False, precision)
        if args.compile:
            results["offrl compile=true" + label] = bench_offrl(args.env, args.steps, args.warmup, args.settle,
                                                                args.seed, args.device, True, precision)
    results["sb3"] = bench_sb3(args.env, args.steps, args.warmup, args.settle, args.seed, args.device)
    if args.sbx_python:
        results["sbx"] = bench_sbx(args.sbx_python, args.env, args.steps, args.warmup, args.settle, args.seed,
                                   args.threads)
    import stable_baselines3

    record = {
        "command": "python benchmarks/bench_sac_vs_sb3.py " + " ".join(sys.argv[1:]),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {args.threads} torch threads, {args.device}, torch {torch.__version__}, "
                   f"stable-baselines3 {stable_baselines3.__version__}",
        "env": args.env, "steps": args.steps, "warmup": args.warmup, "settle": args.settle, "results": results,
    }
    if "sbx" in results:
        record["machine"] += f", {results['sbx']['version']}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = render(record)  # adds the ratios to the record
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    out.with_suffix(".md").write_text(table)
    print(table)


def render(record: dict) -> str:
    """The Markdown table of ``record``, and its ratios (added to ``record``): in each window, offrl's fastest fp32
    configuration and its fastest of all against SB3 and SBX."""
    results, ratios = record["results"], []
    fp32 = [k for k in results if k.startswith("offrl") and "precision=" not in k]
    every = [k for k in results if k.startswith("offrl")]
    for key, window in (("env_steps_per_s", "first"), ("steady_env_steps_per_s", "steady")):
        for group, candidates in (("fp32", fp32), ("any", every)):
            best = max(candidates, key=lambda k: results[k][key])
            for other in ("sb3", "sbx"):
                if other in results:
                    name = f"{window}_speedup_vs_{other}" + ("" if group == "fp32" else "_any_precision")
                    record[name] = results[best][key] / results[other][key]
                    ratios.append(f"{window} window, `{best}` / {other}: {record[name]:.2f}")
    warmup, settle = record["warmup"], record["settle"]
    table = [f"# SAC env steps/s on {record['env']} ({record['date']})", "", f"Command: `{record['command']}`", "",
             f"Machine: {record['machine']}", "",
             f"Windows: from the first update (env step {warmup}, compilation and JIT inside) and steady (from "
             f"env step {warmup + settle}), both to env step {record['steps']}.", "",
             "| implementation | env steps/s, from the first update | env steps/s, steady |", "|---|---:|---:|",
             *(f"| {k} | {v['env_steps_per_s']:.1f} | {v['steady_env_steps_per_s']:.1f} |" for k, v in results.items()),
             "", "Ratios (offrl's fastest fp32 configuration, then its fastest of all): "
             + "; ".join(dict.fromkeys(ratios))]
    return "\n".join(table) + "\n"


if __name__ == "__main__":
    main()
