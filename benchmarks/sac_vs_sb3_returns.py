"""SAC returns at the same step budget: offrl vs stable-baselines3, same hyperparameters (card C.3),
one thread per run, two runs at a time, final deterministic evaluation over 10 episodes.

    python benchmarks/sac_vs_sb3_returns.py --steps 200000 --seeds 0 1 2 [--env Hopper-v5] [--jobs 2]
        [--offrl-from SWEEP_DIR]

--offrl-from reuses offrl SAC runs of a sweep (e.g. the PMOE-vs-SAC one) with the same env, steps and
seeds instead of training them again. Writes benchmarks/results/sac_vs_sb3_returns.{json,md} (runs under
benchmarks/runs/sac_vs_sb3/). Wall time: offrl's training loop (results.json) vs SB3's model.learn.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def offrl_result(result: dict) -> dict:
    return {"impl": "offrl", "seed": result["seed"], "return": result["return_mean"], "wall_s": result["wall_s"]}


def find_offrl(sweep: Path, env: str, steps: int, seeds: list[int]) -> list[dict]:
    found = {}
    for path in sweep.rglob("results.json"):
        result = json.loads(path.read_text())
        if (result["agent"], result["env_id"], result["steps"]) == ("sac", env, steps) and result["seed"] in seeds:
            found[result["seed"]] = offrl_result(result)
    missing = sorted(set(seeds) - set(found))
    if missing:
        raise SystemExit(f"{sweep}: no offrl SAC run on {env} with {steps} steps for seeds {missing}")
    return [found[s] for s in seeds]


def run_offrl(env: str, steps: int, seed: int, root: Path) -> dict:
    run_dir = root / f"offrl_{env}_s{seed}"
    subprocess.run(["offrl", "train", "agent=sac", f"env={env}", f"trainer.steps={steps}", f"seed={seed}",
                    "threads=1", f"trainer.eval_every={steps}", "trainer.eval_episodes=10",
                    f"hydra.run.dir={run_dir}"], check=True, capture_output=True)
    return offrl_result(json.loads((run_dir / "results.json").read_text()))


SB3_SCRIPT = """
import json, sys, time, gymnasium as gym, torch
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy
env_id, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
model = SAC("MlpPolicy", gym.make(env_id), learning_rate=3e-4, buffer_size=1_000_000, learning_starts=10_000,
            batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
            policy_kwargs={"net_arch": [256, 256]}, device="cpu", seed=seed)
tick = time.perf_counter()
model.learn(total_timesteps=steps)
wall_s = time.perf_counter() - tick
mean, std = evaluate_policy(model, gym.make(env_id), n_eval_episodes=10, deterministic=True)
print(json.dumps({"return": float(mean), "wall_s": wall_s}))
"""


def run_sb3(env: str, steps: int, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SB3_SCRIPT, env, str(steps), str(seed)], check=True,
                         capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"impl": "sb3", "seed": seed, "return": result["return"], "wall_s": result["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--offrl-from", type=Path, help="reuse the offrl SAC runs found under this sweep dir")
    parser.add_argument("--out", default=str(HERE / "results" / "sac_vs_sb3_returns"))
    args = parser.parse_args()
    root = HERE / "runs" / "sac_vs_sb3"
    reused = find_offrl(args.offrl_from, args.env, args.steps, args.seeds) if args.offrl_from else []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [] if reused else [pool.submit(run_offrl, args.env, args.steps, s, root) for s in args.seeds]
        futures += [pool.submit(run_sb3, args.env, args.steps, s) for s in args.seeds]
        rows = reused + [f.result() for f in futures]
    summary = {}
    for impl in ("offrl", "sb3"):
        returns = np.array([r["return"] for r in rows if r["impl"] == impl])
        walls = np.array([r["wall_s"] for r in rows if r["impl"] == impl])
        summary[impl] = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
                         "wall_s_mean": float(walls.mean())}
    record = {"command": "python benchmarks/sac_vs_sb3_returns.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(), "machine": f"{platform.machine()}, 1 torch thread per run",
              "env": args.env, "steps": args.steps, "runs": rows, "summary": summary}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# SAC on {args.env} after {args.steps} env steps ({record['date']})", "",
             f"Command: `{record['command']}`", "", "| implementation | return (mean +- std over seeds) | wall s |",
             "|---|---:|---:|"]
    lines += [f"| {k} | {v['return_mean']:.1f} +- {v['return_std']:.1f} | {v['wall_s_mean']:.0f} |"
              for k, v in summary.items()]
    lines += ["", "Wall s is not a speed comparison (runs may share the CPU with other jobs, offrl's includes its "
                  "evaluations); benchmarks/bench_sac_vs_sb3.py measures speed side by side."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
