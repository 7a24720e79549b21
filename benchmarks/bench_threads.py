"""threads under load: TD3+BC updates/s with torch's default threads, threads=1 and threads=auto (offrl's
default: the cores free at start), on an idle machine and with background training processes.

    python benchmarks/bench_threads.py [--seconds 20] [--loads 0 1 2]

Each measurement runs in a fresh process (torch's thread pool is fixed at start). The background load
is N one-thread TD3+BC update loops, the situation of a sweep sharing the machine. Writes
benchmarks/results/threads_under_load.{json,md}; prints ``auto_over_default_loaded=<ratio>`` last
(updates/s of threads=auto over torch's default, at the highest load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

WORKER = r"""
import sys, time, torch
from offrl.agents import make_agent
from offrl.data.store import TransitionStore
from offrl.core.runtime import choose_threads
mode, seconds = sys.argv[1], float(sys.argv[2])
if mode == "auto":
    torch.set_num_threads(choose_threads(None, log=lambda s: None))
elif mode != "default":
    torch.set_num_threads(int(mode))
store = TransitionStore(17, 6, 10_000)
g = torch.Generator().manual_seed(0)
store.add(torch.randn(10_000, 17, generator=g), torch.rand(10_000, 6, generator=g) * 2 - 1,
          torch.randn(10_000, generator=g), torch.randn(10_000, 17, generator=g),
          torch.zeros(10_000), torch.zeros(10_000))
agent = make_agent({"name": "td3bc"}, 17, 6)
for _ in range(20):
    agent.update(store.sample(256))
count, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds or seconds <= 0:
    agent.update(store.sample(256))
    count += 1
print(f"{torch.get_num_threads()} {count / (time.perf_counter() - start)}")
"""


def measure(mode: str, seconds: float) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", WORKER, mode, str(seconds)], capture_output=True, text=True, check=True)
    threads, rate = out.stdout.split()
    return int(threads), float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    from offrl.core.runtime import free_cores

    rows = []
    idle_before = free_cores(1.0)  # other work on the machine, outside this benchmark's control
    print(f"cores idle before the benchmark starts its own load: {idle_before} of {os.cpu_count()}", flush=True)
    for load in args.loads:
        background = [subprocess.Popen([sys.executable, "-c", WORKER, "1", "0"], stdout=subprocess.DEVNULL)
                      for _ in range(load)]
        time.sleep(3.0 if load else 0.0)  # let the background loops reach full speed
        try:
            for mode in ("default", "1", "auto"):
                threads, rate = measure(mode, args.seconds)
                rows.append({"background_jobs": load, "threads_setting": mode, "threads_used": threads,
                             "updates_per_s": rate})
                print(f"load {load}: threads={mode} ({threads} used): {rate:.1f} updates/s", flush=True)
        finally:
            for proc in background:
                proc.kill()
                proc.wait()
    top = max(args.loads)
    by = {(r["background_jobs"], r["threads_setting"]): r["updates_per_s"] for r in rows}
    ratio = by[(top, "auto")] / by[(top, "default")]
    record = {"command": "python benchmarks/bench_threads.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "date": date.today().isoformat(), "seconds_per_measurement": args.seconds,
              "workload": "TD3+BC update, 256x256 MLPs, batch 256, obs 17, act 6", "rows": rows,
              "cores_idle_before_start": idle_before,
              f"auto_over_default_at_{top}_background_jobs": ratio}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads_under_load.json").write_text(json.dumps(record, indent=2))
    lines = ["# threads under load (TD3+BC updates/s)", "", f"`{record['command']}`, {record['machine']}, "
             f"{record['date']}, {args.seconds:.0f} s per measurement, each in a fresh process; "
             f"{idle_before} of {os.cpu_count()} cores were idle before the benchmark added its background jobs.", "",
             "| background 1-thread jobs | torch default | threads=1 | threads=auto (threads used) |",
             "|---:|---:|---:|---:|"]
    for load in args.loads:
        auto = next(r for r in rows if r["background_jobs"] == load and r["threads_setting"] == "auto")
        lines.append(f"| {load} | {by[(load, 'default')]:.1f} | {by[(load, '1')]:.1f} | "
                     f"{auto['updates_per_s']:.1f} ({auto['threads_used']}) |")
    (RESULTS / "threads_under_load.md").write_text("\n".join(lines) + "\n")
    print(f"auto_over_default_loaded={ratio:.2f}")


if __name__ == "__main__":
    main()
