"""Dataset generation speed from a shipped behaviour policy: a full ``offrl datasets build`` (vector
envs, batched policy inference in --workers processes, then the hdf5 file and the Minari dataset).

    python benchmarks/bench_generate.py [--name hopper-expert] [--size 1000000] [--workers 2]

Builds into the cache directory (replacing a cached copy), so the timed build is the real one.
Writes benchmarks/results/generate_speed.{json,md}. The goal: 1M transitions in at most 2 minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

from offrl.generation.recipes import cached_path, ensure_recipe_dataset

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="hopper-expert")
    parser.add_argument("--size", type=int, default=None, help="transitions (default: the full 1M)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "generate_speed"))
    args = parser.parse_args()
    cached_path(args.name, args.size).unlink(missing_ok=True)
    tick = time.perf_counter()
    path = ensure_recipe_dataset(args.name, args.size, workers=args.workers)
    seconds = time.perf_counter() - tick
    import h5py

    with h5py.File(path) as handle:
        size = len(handle["rewards"])
    record = {"command": "python benchmarks/bench_generate.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "name": args.name, "transitions": size, "workers": args.workers, "seconds": seconds,
              "transitions_per_s": size / seconds}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# Building {args.name} ({record['date']})", "", f"Command: `{record['command']}`", "",
             f"Machine: {record['machine']}", "", "| transitions | workers | seconds | transitions/s |",
             "|---:|---:|---:|---:|", f"| {size:,} | {args.workers} | {seconds:.1f} | {size / seconds:,.0f} |", "",
             "Includes process start-up, collection (8 sync envs per worker, batched policy inference), "
             "the D4RL-layout hdf5 file and the Minari dataset."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
