"""precision=fp32 vs precision=bf16 (issue 34): updates/s, roofline fractions, and which values bf16 would spoil.

    python benchmarks/bench_precision.py [--agents td3bc sac iql odice] [--threads 1] [--steps 100] [--reps 5]
                                         [--compile] [--probe-steps 2000] [--probe-dataset hopper-medium]

1. GEMM rates: fp32 and bf16 FLOP/s of the agents' hidden-layer product (256 x 256 x 256), at ``--threads``.
2. Updates/s of each agent (its paper network sizes, batch 256, Hopper's shapes 17 / 6, random transitions), fp32
   and bf16 side by side in this process: the same initial agent twice, the bf16 one prepared as ``offrl train
   precision=bf16`` prepares it (``Precision.prepare``: output layers fp32) and updated under its autocast; ``--reps``
   alternating blocks of ``--steps`` updates each after a warm-up, the median block. ``--compile`` adds both
   compiled (``enable_compile``, inductor). The roofline fraction of a mode = (FLOPs of one update at the GEMM rate
   of its dtype) / its update time: fp32 updates against the fp32 rate, bf16 updates against the bf16 rate.
3. Acting: ``act`` on one observation (online acting) in fp32 and under bf16 autocast.
4. Precision probe: TD3+BC and IQL trained ``--probe-steps`` fp32 updates on ``--probe-dataset``; on 4096 dataset
   rows, the TD targets (TD3+BC), values and advantages (IQL) computed in bf16 with fp32 output layers (offrl's
   bf16) and with bf16 output layers (plain autocast), against fp32: the error next to the size of the TD error /
   the spread of the advantage it would blur.

Writes benchmarks/results/precision.{json,md}; prints ``bf16_over_fp32_<agent>=<ratio>`` (eager) last.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch
from bench_roofline import gemm_rate, store
from torch.utils.flop_counter import FlopCounterMode

from offrl.agents import make_agent
from offrl.core.precision import Precision
from offrl.core.runtime import bf16_unsupported, cpu_model, free_cores

RESULTS = Path(__file__).parent / "results"
BF16 = Precision("bf16", "cpu")
FP32 = Precision("fp32", "cpu")


def update_flops(agent, data) -> float:
    """FLOPs of one update (forward and backward matmuls), the mean of two (TD3's delayed actor step)."""
    probe = copy.deepcopy(agent)
    with FlopCounterMode(display=False) as counter:
        probe.update(data.sample(256))
        probe.update(data.sample(256))
    return counter.get_total_flops() / 2


def block(agent, precision: Precision, data, steps: int) -> float:
    """Updates/s over ``steps`` updates (sampling included)."""
    start = time.perf_counter()
    with precision.autocast():
        for _ in range(steps):
            metrics = agent.update(data.sample(256))
    float(next(iter(metrics.values())))
    return steps / (time.perf_counter() - start)


def agent_rates(name: str, args, data) -> dict:
    torch.manual_seed(0)
    base = make_agent({"name": name}, 17, 6)
    base.attach_dataset(data)
    flops = update_flops(base, data)
    modes = {}
    for compiled in (False, True) if args.compile else (False,):
        for precision in (FP32, BF16):
            agent = copy.deepcopy(base)
            precision.prepare(agent)
            if compiled:
                agent.enable_compile()
            tick = time.perf_counter()
            block(agent, precision, data, args.warmup)
            label = f"{'compiled' if compiled else 'eager'} {precision.name}"
            modes[label] = {"agent": agent, "precision": precision, "warmup_s": time.perf_counter() - tick,
                            "rates": []}
    for _ in range(args.reps):  # alternating blocks: a slow spell of the machine hits every mode alike
        for mode in modes.values():
            mode["rates"].append(block(mode["agent"], mode["precision"], data, args.steps))
    row = {"agent": name, "flops_per_update": flops}
    for label, mode in modes.items():
        rate = statistics.median(mode["rates"])
        gemm = args.gemm_bf16 if mode["precision"].bf16 else args.gemm_fp32
        row[label] = {"updates_per_s": rate, "blocks": mode["rates"], "warmup_s": mode["warmup_s"],
                      "roofline_fraction": flops * rate / gemm}
    for kind in ("eager", "compiled"):
        if f"{kind} bf16" in row:
            row[f"{kind}_bf16_over_fp32"] = row[f"{kind} bf16"]["updates_per_s"] / row[f"{kind} fp32"]["updates_per_s"]
    return row


def acting(args) -> dict:
    """Seconds per ``act`` on one observation (SAC, online acting), fp32 and under bf16 autocast."""
    torch.manual_seed(0)
    fp32 = make_agent({"name": "sac"}, 17, 6)
    bf16 = copy.deepcopy(fp32)
    BF16.prepare(bf16)
    obs = torch.randn(1, 17)
    out = {}
    for _ in range(3):
        for label, agent, precision in (("fp32", fp32, FP32), ("bf16", bf16, BF16)):
            with precision.autocast(), torch.no_grad():
                for _ in range(50):
                    agent.act(obs, deterministic=False)
                start = time.perf_counter()
                for _ in range(500):
                    agent.act(obs, deterministic=False)
            out[label] = min(out.get(label, float("inf")), (time.perf_counter() - start) / 500)
    return out


def probe(args) -> dict:
    """How far bf16 moves the quantities a TD target, a value loss or an AWR weight reads (module docstring, 4)."""
    from offrl.data.d4rl import read_d4rl_hdf5
    from offrl.data.store import ObsNormalizer, TransitionStore
    from offrl.generation.recipes import ensure_recipe_dataset

    data = read_d4rl_hdf5(ensure_recipe_dataset(args.probe_dataset))
    rows = TransitionStore.from_data(data, "cpu", seed=0)
    rows.normalize_obs(ObsNormalizer.fit(data.observations))
    out = {"dataset": args.probe_dataset, "steps": args.probe_steps}
    for name in ("td3bc", "iql"):
        torch.manual_seed(0)
        agent = make_agent({"name": name}, data.obs_dim, data.act_dim)
        agent.attach_dataset(rows)
        for _ in range(args.probe_steps):
            agent.update(rows.sample(256))
        ours = copy.deepcopy(agent)
        BF16.prepare(ours)
        plain = copy.deepcopy(agent)  # plain autocast: its output layers bf16 too
        torch.manual_seed(1)
        batch = rows.sample(4096)
        with torch.no_grad():
            if name == "td3bc":
                noise = agent.noise_like(batch.actions)
                y = agent.td_target(batch, noise)[1]
                td_error = (y - agent.critic(batch.obs, batch.actions)).abs().mean()
                errors = {}
                for label, net in (("bf16, fp32 outputs (offrl)", ours), ("bf16 outputs (plain autocast)", plain)):
                    with BF16.autocast():
                        errors[label] = (net.td_target(batch, noise)[1].float() - y).abs().mean()
                out[name] = {"quantity": "TD target y = r + gamma min Q'(s', a')", "mean_abs": float(y.abs().mean()),
                             "scale": "mean abs TD error", "scale_value": float(td_error),
                             "errors": {k: float(v) for k, v in errors.items()}}
            else:
                target_q = agent.critic_target(batch.obs, batch.actions).min(dim=-2).values
                advantage = target_q - agent.value(batch.obs).squeeze(-1)
                errors = {}
                for label, net in (("bf16, fp32 outputs (offrl)", ours), ("bf16 outputs (plain autocast)", plain)):
                    with BF16.autocast():
                        q = net.critic_target(batch.obs, batch.actions).min(dim=-2).values
                        errors[label] = ((q - net.value(batch.obs).squeeze(-1)).float() - advantage).abs().mean()
                out[name] = {"quantity": "advantage A = min Q'(s, a) - V(s) (AWR weight exp(3 A))",
                             "mean_abs": float(target_q.abs().mean()), "scale": "std of A",
                             "scale_value": float(advantage.std()), "errors": {k: float(v) for k, v in errors.items()}}
        print(f"probe {name}: {out[name]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", default=["td3bc", "sac", "iql", "odice"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100, help="updates per timed block")
    parser.add_argument("--reps", type=int, default=5, help="alternating blocks per mode (the median is kept)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="also both modes compiled")
    parser.add_argument("--probe-steps", type=int, default=2000, help="0: no precision probe")
    parser.add_argument("--probe-dataset", default="hopper-medium")
    parser.add_argument("--out", default=str(RESULTS / "precision"))
    args = parser.parse_args()
    why = bf16_unsupported(torch.device("cpu"))
    if why is not None:
        sys.exit(f"bench_precision: {why}")
    idle = free_cores()
    torch.set_num_threads(args.threads)
    args.gemm_fp32 = gemm_rate(args.threads)
    args.gemm_bf16 = gemm_rate(args.threads, dtype=torch.bfloat16)
    torch.set_num_threads(args.threads)
    print(f"GEMM 256x256x256: fp32 {args.gemm_fp32 / 1e9:.1f} GFLOP/s, bf16 {args.gemm_bf16 / 1e9:.1f} GFLOP/s "
          f"({args.gemm_bf16 / args.gemm_fp32:.2f}x)", flush=True)
    data = store(17, 6)
    rows = []
    for name in args.agents:
        row = agent_rates(name, args, data)
        rows.append(row)
        print(f"{name}: " + ", ".join(f"{k} {v['updates_per_s']:.1f}/s (roofline {v['roofline_fraction']:.2f})"
                                      for k, v in row.items() if isinstance(v, dict))
              + "; bf16/fp32 " + ", ".join(f"{k.split('_')[0]} {row[k]:.2f}x" for k in row if k.endswith("_over_fp32")),
              flush=True)
    act = acting(args)
    print(f"act, one observation (sac): fp32 {act['fp32'] * 1e6:.0f} us, bf16 {act['bf16'] * 1e6:.0f} us", flush=True)
    probed = probe(args) if args.probe_steps > 0 else None

    record = {"command": "python benchmarks/bench_precision.py " + " ".join(sys.argv[1:]),
              "date": date.today().isoformat(), "cpu": cpu_model(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "threads": args.threads, "idle_cores_at_start": idle, "batch": 256, "obs_dim": 17, "act_dim": 6,
              "gemm_flops_per_s": {"fp32": args.gemm_fp32, "bf16": args.gemm_bf16}, "rows": rows,
              "act_s": act, "probe": probed}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    out.with_suffix(".md").write_text(markdown(record, args))
    for row in rows:
        print(f"bf16_over_fp32_{row['agent']}={row['eager_bf16_over_fp32']:.2f}")


def markdown(record: dict, args) -> str:
    gemm = record["gemm_flops_per_s"]
    kinds = [k for k in ("eager", "compiled") if f"{k} fp32" in record["rows"][0]]
    lines = [f"# fp32 vs bf16 updates/s ({record['date']})", "",
             f"`{record['command']}`; {record['cpu']}, {record['machine']}; {record['threads']} thread(s), "
             f"{record['idle_cores_at_start']} core(s) idle at start (others may run jobs of their own); batch 256, "
             f"paper network sizes, Hopper's shapes. GEMM 256 x 256 x 256: fp32 {gemm['fp32'] / 1e9:.1f} GFLOP/s, "
             f"bf16 {gemm['bf16'] / 1e9:.1f} GFLOP/s ({gemm['bf16'] / gemm['fp32']:.2f}x). Median of {args.reps} "
             f"alternating blocks of {args.steps} updates; roofline fraction = time of the update's FLOPs at the "
             "GEMM rate of its dtype / its update time.", "",
             "| agent | GFLOP / update | " + " | ".join(f"{k} fp32 updates/s (fraction) | {k} bf16 updates/s "
                                                       f"(fraction) | {k} bf16 / fp32" for k in kinds) + " |",
             "|---|---:|" + "---:|---:|---:|" * len(kinds)]
    for row in record["rows"]:
        cells = []
        for k in kinds:
            f32, b16 = row[f"{k} fp32"], row[f"{k} bf16"]
            cells += [f"{f32['updates_per_s']:.1f} ({f32['roofline_fraction']:.2f})",
                      f"{b16['updates_per_s']:.1f} ({b16['roofline_fraction']:.2f})",
                      f"{row[f'{k}_bf16_over_fp32']:.2f}x"]
        lines.append(f"| {row['agent']} | {row['flops_per_update'] / 1e9:.3f} | " + " | ".join(cells) + " |")
    act = record["act_s"]
    lines += ["", f"Acting (SAC, `act` on one observation): fp32 {act['fp32'] * 1e6:.0f} us, under bf16 autocast "
              f"{act['bf16'] * 1e6:.0f} us: offrl acts and evaluates in fp32."]
    if record["probe"]:
        p = record["probe"]
        lines += ["", f"## What bf16 would spoil: {p['dataset']}, after {p['steps']} fp32 updates, 4096 rows", "",
                  "Mean absolute error against fp32, and that error as a share of the scale the update reads the "
                  "quantity against.", "",
                  "| agent | quantity | mean abs value | scale | bf16, fp32 output layers (offrl) | bf16 output layers "
                  "(plain autocast) |", "|---|---|---:|---|---:|---:|"]
        for name in ("td3bc", "iql"):
            q = p[name]
            cells = [f"{e:.4f} ({e / q['scale_value']:.1%})" for e in q["errors"].values()]
            lines.append(f"| {name} | {q['quantity']} | {q['mean_abs']:.2f} | {q['scale']} = {q['scale_value']:.3f} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
