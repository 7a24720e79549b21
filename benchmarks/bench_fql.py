"""Updates/s of FQL beside IQL at the FQL paper's network sizes, measured side by side in one process.

    python benchmarks/bench_fql.py [--seconds 20] [--device cpu] [--compile] [--threads 1] [--precision bf16]

Both agents get 4 x 512 networks (FQL's defaults; IQL as the FQL repository's baseline config: 4 x 512, LayerNorm),
batches of 256 and OGBench cube-single's dimensions (28-dim observations, 5-dim actions) on fixed random batches (no
data, no env). After 10 warm-up updates each (compilation included with --compile), the two alternate blocks of 10
updates until --seconds have passed; each prints the median and the best block rate, so both see the same machine
state. FQL's update holds 10 Euler steps of its flow network on top of three networks' backward passes.
``--precision bf16`` runs both as ``offrl train precision=bf16`` does (offrl.core.precision). Appends one row per
call to benchmarks/results/fql_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from offrl.agents import make_agent
from offrl.core.precision import Precision
from offrl.core.runtime import cpu_model
from offrl.data.store import Batch

OBS, ACT, ROWS, BLOCK = 28, 5, 256, 10
NETS = [512, 512, 512, 512]
AGENTS = {"fql": {"name": "fql"},
          "iql": {"name": "iql", "hidden_dims": NETS, "layer_norm": True, "expectile": 0.9, "beta": 10.0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed wall-clock budget for both agents together")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile each agent's update")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--note", default="", help="the conditions, shown in the row (e.g. another job on the core)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "fql_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = [Batch(torch.randn(ROWS, OBS), torch.rand(ROWS, ACT) * 2 - 1, torch.randn(ROWS), torch.randn(ROWS, OBS),
                  torch.zeros(ROWS)).map(lambda x: x.to(args.device)) for _ in range(4)]
    agents = {name: make_agent(cfg, OBS, ACT, args.device) for name, cfg in AGENTS.items()}
    precision = Precision(args.precision, torch.device(args.device).type)
    for agent in agents.values():
        precision.prepare(agent)
        if args.compile:
            agent.enable_compile()
        with precision.autocast():
            run_block(agent, data, args.device)
    rates: dict[str, list[float]] = {name: [] for name in agents}
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end or not all(rates.values()):
        for name, agent in agents.items():
            with precision.autocast():
                rates[name].append(BLOCK / run_block(agent, data, args.device))
    row = {"date": date.today().isoformat(), "device": args.device, "cpu": cpu_model(), "threads": args.threads,
           "compile": args.compile, "precision": args.precision, "note": args.note, "batch": ROWS,
           "networks": "4 x 512",
           **{f"{name}_updates_per_s": statistics.median(values) for name, values in rates.items()},
           "blocks": {name: len(values) for name, values in rates.items()}}
    row["fql_over_iql"] = row["fql_updates_per_s"] / row["iql_updates_per_s"]
    out = Path(args.out)
    rows = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").is_file() else []
    rows.append(row)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# FQL beside IQL: updates/s at the FQL paper's sizes (benchmarks/bench_fql.py)", "",
             "Medians of alternating blocks of 10 updates, one process per row; batch 256, 4 x 512 networks, "
             "cube-single's shapes.", "",
             "| date | device (CPU) | threads | compile | precision | FQL updates/s | IQL updates/s | FQL / IQL "
             "| note |",
             "|---|---|---:|---|---|---:|---:|---:|---|"]
    lines += [f"| {r['date']} | {r['device']} ({r['cpu']}) | {r['threads']} | {r['compile']} | {r['precision']} | "
              f"{r['fql_updates_per_s']:.2f} | {r['iql_updates_per_s']:.2f} | {r['fql_over_iql']:.2f} | "
              f"{r.get('note', '')} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def run_block(agent, data: list[Batch], device: str) -> float:
    """Seconds for BLOCK updates, the last metrics read back (so queued GPU work is included)."""
    tick = time.perf_counter()
    for i in range(BLOCK):
        metrics = agent.update(data[i % len(data)])
    float(next(iter(metrics.values())).sum())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - tick


if __name__ == "__main__":
    main()
