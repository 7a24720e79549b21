"""SAC environment steps per second on Hopper-v5: offrl vs stable-baselines3, same hyperparameters
(card C.3: Adam 3e-4, batch 256, 256x256, tau 0.005, gamma 0.99, auto temperature with target -|A|,
one update per env step), same thread count, timed over the same window after the warm-up.

    python experiments/bench_sac_vs_sb3.py --steps 3000 [--warmup 1000] [--threads 2] [--device cuda]

Needs stable-baselines3 (pip install -e '.[bench]'). Prints speedup_vs_sb3=<ratio> last and writes
experiments/results/sac_vs_sb3_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def bench_sb3(env_id: str, steps: int, warmup: int, seed: int, device: str) -> dict:
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    class Clock(BaseCallback):
        marks: dict[int, float] = {}

        def _on_step(self) -> bool:
            if self.num_timesteps in (warmup, steps):
                self.marks[self.num_timesteps] = time.perf_counter()
            return True

    model = SAC("MlpPolicy", gym.make(env_id), learning_rate=3e-4, buffer_size=1_000_000, learning_starts=warmup,
                batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs={"net_arch": [256, 256]}, device=device, seed=seed, verbose=0)
    clock = Clock()
    model.learn(total_timesteps=steps, callback=clock)
    window = clock.marks[steps] - clock.marks[warmup]
    return {"env_steps_per_s": (steps - warmup) / window, "window_s": window}


def bench_offrl(env_id: str, steps: int, warmup: int, seed: int, device: str, compile_: bool) -> dict:
    from offrl.run import train

    cfg = {"seed": seed, "device": device, "compile": compile_, "env": env_id, "agent": {"name": "sac"},
           "trainer": {"mode": "online", "steps": steps, "warmup_steps": warmup, "eval_every": 10**9,
                       "eval_episodes": 1, "checkpoint_every": 10**9}}
    with tempfile.TemporaryDirectory() as run_dir:
        results = train(cfg, run_dir)
    return {"env_steps_per_s": results["env_steps_per_s"], "updates_per_s": results["updates_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="total env steps per contender")
    parser.add_argument("--warmup", type=int, default=1000, help="random steps before learning (not timed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for both contenders")
    parser.add_argument("--compile", action="store_true", help="torch.compile offrl's update")
    parser.add_argument("--out", default=str(HERE / "results" / "sac_vs_sb3_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"offrl": bench_offrl(args.env, args.steps, args.warmup, args.seed, args.device, args.compile),
               "sb3": bench_sb3(args.env, args.steps, args.warmup, args.seed, args.device)}
    import stable_baselines3

    speedup = results["offrl"]["env_steps_per_s"] / results["sb3"]["env_steps_per_s"]
    record = {
        "command": "python experiments/bench_sac_vs_sb3.py " + " ".join(sys.argv[1:]),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {args.threads} torch threads, {args.device}, torch {torch.__version__}, "
                   f"stable-baselines3 {stable_baselines3.__version__}",
        "env": args.env, "steps": args.steps, "warmup": args.warmup, "results": results,
        "speedup_vs_sb3": speedup,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    table = [f"# SAC env steps/s on {args.env} ({record['date']})", "", f"Command: `{record['command']}`", "",
             f"Machine: {record['machine']}", "", "| implementation | env steps/s |", "|---|---:|",
             *(f"| {k} | {v['env_steps_per_s']:.1f} |" for k, v in results.items()), "",
             f"speedup_vs_sb3 = {speedup:.2f}"]
    out.with_suffix(".md").write_text("\n".join(table) + "\n")
    print("\n".join(table[:-1]))
    print(f"speedup_vs_sb3={speedup:.2f}")


if __name__ == "__main__":
    main()
