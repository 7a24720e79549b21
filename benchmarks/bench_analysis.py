"""Seconds for ``offrl.tools.analysis.analyze`` on a synthetic 1M-transition D4RL-layout dataset.

    python benchmarks/bench_analysis.py [--transitions 1000000] [--repeats 3] [--note TEXT]

The dataset is built in memory (17-dim states, 6-dim actions, 1000-step episodes, float32, like
halfcheetah) and analysed against itself twice: SACo binning all transitions (``subset=None``) and
the paper's first 100,000 (the default). The best of ``--repeats`` runs is reported.
Writes benchmarks/results/analysis_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.tools.analysis import analyze

HERE = Path(__file__).resolve().parent
OBS_DIM, ACT_DIM, EPISODE_LENGTH = 17, 6, 1000


def synthetic_dataset(transitions: int, seed: int = 0) -> OfflineData:
    """Random-walk states, tanh-squashed Gaussian actions (some saturated), time limits every 1000 steps."""
    rng = np.random.default_rng(seed)
    states = np.cumsum(rng.normal(scale=0.1, size=(transitions + 1, OBS_DIM)), axis=0).astype(np.float32)
    episode_ends = np.zeros(transitions, bool)
    episode_ends[EPISODE_LENGTH - 1::EPISODE_LENGTH] = True
    info = DatasetInfo(name="synthetic-1m", source="hdf5", location="<memory>", ref_min_score=-300.0,
                       ref_max_score=12000.0)
    return OfflineData(
        observations=states[:-1],
        actions=np.tanh(rng.normal(scale=1.5, size=(transitions, ACT_DIM))).astype(np.float32),
        rewards=rng.normal(loc=3.0, size=transitions).astype(np.float32),
        next_observations=states[1:],
        terminals=np.zeros(transitions, bool),
        episode_ends=episode_ends,
        info=info,
    )


def time_analyze(data: OfflineData, subset: int | None, repeats: int) -> dict:
    timings = []
    for _ in range(repeats):
        tick = time.perf_counter()
        result = analyze(data, subset=subset)
        timings.append(time.perf_counter() - tick)
    best = min(timings)
    return {"subset": subset, "seconds": best, "all_seconds": timings, "transitions_per_s": len(data) / best,
            "saco_unique": result["saco"]["unique"], "binned": result["saco"]["binned"],
            "duplicates": result["duplicates"]["count"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "analysis_speed"))
    parser.add_argument("--note", default="", help="conditions worth recording, e.g. other load on the machine")
    args = parser.parse_args()

    data = synthetic_dataset(args.transitions)
    runs = [time_analyze(data, None, args.repeats), time_analyze(data, 100_000, args.repeats)]
    record = {
        "command": " ".join(["python benchmarks/bench_analysis.py", *map(shlex.quote, sys.argv[1:])]),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} cores, "
                   f"python {platform.python_version()}, numpy {np.__version__}",
        "note": args.note,
        "dataset": {"transitions": len(data), "obs_dim": OBS_DIM, "act_dim": ACT_DIM,
                    "episode_length": EPISODE_LENGTH, "dtype": "float32"},
        "bins": 5,
        "repeats": args.repeats,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# analyze() speed ({record['date']})", "", f"Command: `{record['command']}`", "",
             f"Machine: {record['machine']}" + (f" ({args.note})" if args.note else ""), "",
             f"Data: {len(data)} synthetic transitions, {OBS_DIM}-dim states, {ACT_DIM}-dim actions, "
             f"{EPISODE_LENGTH}-step episodes, float32; reference = itself, 5 bin edges; best of {args.repeats}.",
             "", "| SACo subset | transitions binned | seconds | transitions/s |", "|---|---:|---:|---:|"]
    for run in runs:
        subset = "all" if run["subset"] is None else str(run["subset"])
        lines.append(f"| {subset} | {run['binned']} | {run['seconds']:.2f} | {run['transitions_per_s']:,.0f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
