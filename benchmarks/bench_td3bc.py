"""TD3+BC gradient updates per second: offrl eager vs offrl compiled vs d3rlpy, same data, one run.

    python benchmarks/bench_td3bc.py --steps 2000 [--d3rlpy-python /path/to/d3rlpy-venv/bin/python]

Each contender runs ``--warmup`` updates first (compilation happens there and is reported
separately), then ``--steps`` timed updates of batch 256 with 256x256 MLPs, sampling included.
d3rlpy 2.8 pins gymnasium 1.0, so it lives in its own venv; the worker script runs there.
Writes benchmarks/results/td3bc_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from offrl.agents import make_agent
from offrl.data.d4rl import read_d4rl_hdf5
from offrl.data.store import ObsNormalizer, TransitionStore
from offrl.generation.recipes import ensure_recipe_dataset

HERE = Path(__file__).resolve().parent


def bench_offrl(path: Path, steps: int, warmup: int, compile_: bool, device: str, agent_name: str = "td3bc",
                **agent_options) -> dict:
    data = read_d4rl_hdf5(path)
    store = TransitionStore.from_data(data, device)
    store.normalize_obs(ObsNormalizer.fit(data.observations))
    agent = make_agent({"name": agent_name, **agent_options}, data.obs_dim, data.act_dim, device)
    agent.attach_dataset(store)
    if compile_:
        agent.enable_compile()
    tick = time.perf_counter()
    for _ in range(warmup):
        agent.update(store.sample(256))
    _sync(device)
    warmup_s = time.perf_counter() - tick
    tick = time.perf_counter()
    for _ in range(steps):
        metrics = agent.update(store.sample(256))
    _sync(device)
    elapsed = time.perf_counter() - tick
    assert all(torch.isfinite(value).all() for value in metrics.values())
    return {"updates_per_s": steps / elapsed, "timed_s": elapsed, "warmup_s": warmup_s}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_d3rlpy(python: str, path: Path, steps: int, warmup: int, threads: int, algo: str = "td3bc",
                 *evaluation) -> dict:
    """d3rlpy_worker.py in d3rlpy's venv; ``evaluation`` = (env_id, seed, episodes) also scores the policy."""
    out = subprocess.run([python, str(HERE / "d3rlpy_worker.py"), str(path), str(steps), str(warmup),
                          str(threads), algo, *map(str, evaluation)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--d3rlpy-python", default=None, help="python of a venv with d3rlpy 2.8 installed")
    parser.add_argument("--out", default=str(HERE / "results" / "td3bc_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = ensure_recipe_dataset("idp-mixed")

    results = {"eager": bench_offrl(path, args.steps, args.warmup, False, args.device),
               "compiled": bench_offrl(path, args.steps, args.warmup, True, args.device)}
    if args.d3rlpy_python:
        results["d3rlpy"] = bench_d3rlpy(args.d3rlpy_python, path, args.steps, args.warmup, args.threads)
    eager = results["eager"]["updates_per_s"]
    ratios = {"compiled_over_eager": results["compiled"]["updates_per_s"] / eager}
    if "d3rlpy" in results:
        ratios["eager_over_d3rlpy"] = eager / results["d3rlpy"]["updates_per_s"]
        ratios["compiled_over_d3rlpy"] = results["compiled"]["updates_per_s"] / results["d3rlpy"]["updates_per_s"]
    record = {
        "command": "python benchmarks/bench_td3bc.py " + " ".join(sys.argv[1:]),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} torch threads, "
                   f"device {args.device}, torch {torch.__version__}".strip(),
        "dataset": str(path.name), "batch_size": 256, "hidden": [256, 256], "steps": args.steps,
        "warmup": args.warmup, "results": results, "ratios": ratios,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# TD3+BC updates/s ({record['date']})", "", f"Command: `{record['command']}`", "",
             f"Machine: {record['machine']}", "", "| implementation | updates/s | warm-up (s) |", "|---|---:|---:|"]
    for name, row in results.items():
        lines.append(f"| {name} | {row['updates_per_s']:.1f} | {row['warmup_s']:.1f} |")
    lines += ["", "Ratios: " + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items())]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
