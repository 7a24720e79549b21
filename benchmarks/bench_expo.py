"""EXPO vs SAC speed in offrl's trainer: environment steps/s and updates/s, online with offline data,
same UTD, same data, one process, one after the other.

    python benchmarks/bench_expo.py [--dataset hopper-medium] [--steps 20] [--paper-steps 3] [--warmup 300]
                                     [--threads 1] [--device cpu|cuda] [--configs cpu,paper]

Each run is ``offrl.training.run.train`` with trainer mode offline_to_online (no pre-training, offline fraction
0.5, batch 256): ``--warmup`` uniform-random env steps (untimed, they only fill the replay), then
``--steps`` timed env steps, each one update = ``utd`` critic minibatches + one policy step (the
trainer's ``env_steps_per_s``: env step + acting + update; ``updates_per_s``: UTD updates, i.e.
policy steps, per second of update time). Configs: ``paper`` = agent=expo (utd 20, 10 critics,
N = 8, 1024-wide denoiser blocks), ``cpu`` = agent=expo_cpu (utd 2; see conf/agent/expo_cpu.yaml);
SAC runs with the same utd and batch (its own defaults otherwise). Evaluation is one episode at the
end and is not timed. Writes benchmarks/results/expo_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch
import yaml

from offrl.training.run import train

HERE = Path(__file__).resolve().parent
CONF = HERE.parent / "conf"


def preset(name: str) -> dict:
    """The agent values of conf/agent/<name>.yaml (without its defaults list) and its trainer's utd."""
    agent = yaml.safe_load((CONF / "agent" / f"{name}.yaml").read_text())
    trainer = next(d for d in agent.pop("defaults") if isinstance(d, dict) and any("trainer" in k for k in d))
    trainer_yaml = yaml.safe_load((CONF / "trainer" / f"{next(iter(trainer.values()))}.yaml").read_text())
    return {"name": "expo", **agent}, trainer_yaml["utd"]


def run_one(agent: dict, utd: int, steps: int, args, run_dir: Path) -> dict:
    cfg = {"agent": agent, "dataset": {"name": args.dataset},
           "trainer": {"mode": "offline_to_online", "pretrain_steps": 0, "steps": args.warmup + steps,
                       "warmup_steps": args.warmup, "utd": utd, "batch_size": 256, "offline_fraction": 0.5,
                       "eval_every": 10**9, "eval_episodes": 1, "eval_envs": 1, "log_every": 10**9,
                       "checkpoint_every": 10**9},
           "device": args.device, "threads": args.threads, "seed": 0}
    results = train(cfg, run_dir)
    return {"env_steps_per_s": results["env_steps_per_s"], "updates_per_s": results["updates_per_s"],
            "critic_updates_per_s": results["updates_per_s"] * utd, "utd": utd,
            "timed_env_steps": steps, "updates": results["gradient_steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hopper-medium")
    parser.add_argument("--steps", type=int, default=20, help="timed env steps after the warm-up")
    parser.add_argument("--paper-steps", type=int, default=3,
                        help="timed env steps for the paper config (about 40 s each on one CPU thread)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default="cpu,paper")
    parser.add_argument("--out", default=str(HERE / "results" / "expo_speed"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            agent, utd = preset({"cpu": "expo_cpu", "paper": "expo"}[name])
            steps = args.paper_steps if name == "paper" else args.steps
            for label, agent_cfg in ((f"expo ({name} config)", agent), ("sac", {"name": "sac"})):
                result = run_one(agent_cfg, utd, steps, args, Path(tmp) / f"{name}_{agent_cfg['name']}")
                rows.append({"run": label, "config": name, **result})
                print(f"{label}, utd {utd}: {result['env_steps_per_s']:.2f} env steps/s, "
                      f"{result['updates_per_s']:.2f} updates/s ({result['critic_updates_per_s']:.1f} critic steps/s)",
                      flush=True)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    record = {"command": "python benchmarks/bench_expo.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(),
              "machine": f"{platform.machine()}, {device}, {args.threads} torch threads, device {args.device}, "
                         f"torch {torch.__version__}",
              "dataset": args.dataset, "warmup": args.warmup, "results": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# EXPO vs SAC speed, online with offline data, on {args.dataset} ({record['date']})", "",
             f"Command: `{record['command']}`", "", f"Machine: {record['machine']}", "",
             f"Timed env steps after {args.warmup} random ones; one update per env step = utd critic "
             "minibatches of 256 + one policy step.", "",
             "| run | utd | timed env steps | env steps/s | updates/s | critic steps/s |",
             "|---|---:|---:|---:|---:|---:|",
             *(f"| {r['run']} | {r['utd']} | {r['timed_env_steps']} | {r['env_steps_per_s']:.2f} | "
               f"{r['updates_per_s']:.2f} | {r['critic_updates_per_s']:.1f} |" for r in rows)]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
