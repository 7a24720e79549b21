"""Dataset generation speed from a shipped behaviour policy: collection (vector envs, batched policy
inference, --workers processes) and the whole build (plus hdf5 and Minari writing).

    python experiments/bench_generate.py [--name hopper-expert] [--size 1000000] [--workers 2]

Writes experiments/results/generate_speed.{json,md}. The goal: 1M transitions in at most 2 minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from offrl.data.generate import build_generated, collect_policy, split_name

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="hopper-expert")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "generate_speed"))
    args = parser.parse_args()
    family, quality = split_name(args.name)
    tick = time.perf_counter()
    collect_policy(family, quality, args.size, args.workers)
    collect_s = time.perf_counter() - tick
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MINARI_DATASETS_PATH"] = tmp
        tick = time.perf_counter()
        build_generated(args.name, Path(tmp) / "d.hdf5", args.size, args.workers)
        build_s = time.perf_counter() - tick
    record = {"command": "python experiments/bench_generate.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "name": args.name, "size": args.size, "workers": args.workers,
              "collect_s": collect_s, "collect_transitions_per_s": args.size / collect_s,
              "build_s": build_s, "build_transitions_per_s": args.size / build_s}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# Generating {args.name}, {args.size:,} transitions ({record['date']})", "",
             f"Command: `{record['command']}`", "", f"Machine: {record['machine']}", "",
             "| stage | seconds | transitions/s |", "|---|---:|---:|",
             f"| collection ({args.workers} workers x 8 sync envs) | {collect_s:.1f} | {args.size / collect_s:,.0f} |",
             f"| full build (collection + hdf5 + Minari) | {build_s:.1f} | {args.size / build_s:,.0f} |"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
