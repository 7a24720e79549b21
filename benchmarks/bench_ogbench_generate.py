"""Throughput of OGBench-protocol dataset generation (offrl/generation/ogbench_gen.py).

For each family x kind, collect ``--size`` transitions with ``--workers`` worker processes (the
collection only, including process start-up; no file writing), report transitions/s and the time a
1M-transition build (OGBench's default size) would take at that rate. Writes
benchmarks/results/ogbench_generate.{json,md}.

    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/bench_ogbench_generate.py --size 2000 --workers 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from offrl.core.runtime import cpu_model
from offrl.generation import ogbench_gen

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--datasets", nargs="*", default=[f"{f}-{k}" for f in ogbench_gen.FAMILIES
                                                          for k in ogbench_gen.KINDS])
    parser.add_argument("--out", default=str(RESULTS / "ogbench_generate"))
    args = parser.parse_args(argv)

    rows = []
    load_start = os.getloadavg()
    for name in args.datasets:
        family, kind, _ = ogbench_gen.split_name(name)
        started = time.perf_counter()
        data = ogbench_gen.collect(family, kind, args.size, workers=args.workers)
        wall = time.perf_counter() - started
        rate, loop_s = args.size / wall, float(data["loop_s"][0])
        rows.append({"dataset": name, "transitions": args.size, "workers": args.workers, "wall_s": round(wall, 2),
                     "transitions_per_s": round(rate, 1), "stepping_s": round(loop_s, 2),
                     "stepping_transitions_per_s": round(args.size / loop_s, 1),
                     "est_1M_min": round(1e6 / (args.size / loop_s) / 60, 1),
                     "data_collection_reward_rows": int((data["rewards"] > 0).sum())})
        print(json.dumps(rows[-1]), flush=True)
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_start": [round(x, 2) for x in load_start],
                    "load_avg_end": [round(x, 2) for x in os.getloadavg()],
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "note": "transitions_per_s: collection wall time incl. worker start-up (hdf5/Minari writing excluded); "
                "stepping_transitions_per_s: without start-up (slowest worker); est_1M_min from the stepping rate",
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# OGBench-protocol generation throughput ({record['date']})", "",
             f"Command: `{record['command']}`  ",
             f"Machine: {record['machine']['cpu']}, {record['machine']['cpus']} CPUs, load average "
             f"{record['machine']['load_avg_start'][0]} at start / {record['machine']['load_avg_end'][0]} at end, "
             f"OMP_NUM_THREADS={record['machine']['OMP_NUM_THREADS']}  ",
             f"{record['note']}", "",
             "| dataset | transitions | workers | wall s | transitions/s | stepping transitions/s | est. 1M (min) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['dataset']} | {r['transitions']} | {r['workers']} | {r['wall_s']} | {r['transitions_per_s']} | "
              f"{r['stepping_transitions_per_s']} | {r['est_1M_min']} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
