"""A LayerNorm's affine part on the rows, or folded into the next layer's weights, side by side in whole updates.

    python benchmarks/bench_layer_norm_fold.py [--repeats 10] [--updates 10] [--note "..."]

Critics with a LayerNorm after each hidden activation (ReBRAC's, FQL's, TD3+BC's with ``critic_layer_norm``) feed
gamma * x^ + beta straight into the next linear layer. offrl.core.nets.EnsembleMLP computes that layer as
x^ (diag(gamma) W) + (beta W + b) when the batch has more rows than the layer has outputs: the elementwise work of the
affine part, forward and backward, then scales with the weights instead of the rows (the same function and
gradients; tests/test_agents.py). Before, the affine part was always applied to the rows (``on_rows`` below, the
former forward). Whole updates of each agent at its default sizes (obs 17, act 6; FQL: OGBench cube's 28 and 5),
both ways, alternating (``--repeats`` rounds of ``--updates`` updates, the median round), one thread, CPU time of
the process (time.process_time: the machine's other jobs count less). Writes
benchmarks/results/layer_norm_fold.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from offrl.agents import make_agent
from offrl.core import nets
from offrl.core.runtime import cpu_model, flush_denormals
from offrl.data.store import Batch

RESULTS = Path(__file__).parent / "results"
FOLDED = nets.EnsembleMLP.forward
# agent config, observation and action sizes, batch
CASES = {"rebrac": ({"name": "rebrac"}, 17, 6, 1024),
         "td3bc + LayerNorm": ({"name": "td3bc", "critic_layer_norm": True}, 17, 6, 256),
         "fql": ({"name": "fql"}, 28, 5, 256)}


def on_rows(self: nets.EnsembleMLP, x: torch.Tensor, members=slice(None)) -> torch.Tensor:
    """The former forward: every LayerNorm's affine part applied to the rows."""
    seeded = self.layers[0].weight.dim() == 4
    if x.dim() == (3 if seeded else 2):
        count = members.numel() if isinstance(members, torch.Tensor) else len(range(self.n)[members])
        x = x.unsqueeze(-3).expand(*x.shape[:-2], count, *x.shape[-2:])
    members_of = (slice(None), members) if seeded else members
    for i, layer in enumerate(self.layers):
        x = layer(x, members)
        if i < len(self.layers) - 1:
            if self.norm_weights is not None and not self.norm_after_activation:
                x = self._scale_shift(F.layer_norm(x, x.shape[-1:]), self._affine(i, members_of))
            x = self.activation(x)
            if self.norm_weights is not None and self.norm_after_activation:
                x = self._scale_shift(F.layer_norm(x, x.shape[-1:]), self._affine(i, members_of))
    return x


def update_ms(case: str, repeats: int, updates: int) -> dict:
    cfg, obs, act, rows = CASES[case]
    g = torch.Generator().manual_seed(0)
    batches = [Batch(torch.randn(rows, obs, generator=g), torch.rand(rows, act, generator=g) * 2 - 1,
                     torch.randn(rows, generator=g), torch.randn(rows, obs, generator=g), torch.zeros(rows),
                     next_actions=torch.rand(rows, act, generator=g) * 2 - 1) for _ in range(4)]
    agents = {}
    for way in ("on_rows", "folded"):
        torch.manual_seed(0)
        agents[way] = make_agent(cfg, obs, act, "cpu")
    times: dict[str, list[float]] = {way: [] for way in agents}
    for round_ in range(repeats + 1):  # round 0 warms both up
        for way, agent in agents.items():
            nets.EnsembleMLP.forward = on_rows if way == "on_rows" else FOLDED
            start = time.process_time()
            for i in range(updates):
                agent.update(batches[i % len(batches)])
            if round_:
                times[way].append((time.process_time() - start) / updates * 1e3)
    nets.EnsembleMLP.forward = FOLDED
    ms = {way: statistics.median(values) for way, values in times.items()}
    return {"agent": case, "batch": rows, "on_rows_ms": ms["on_rows"], "folded_ms": ms["folded"],
            "speedup": ms["on_rows"] / ms["folded"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--note", default="", help="the conditions (e.g. another job on the core)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    flush_denormals()
    rows = [update_ms(case, args.repeats, args.updates) for case in CASES]
    result = {"date": date.today().isoformat(), "cpu": cpu_model(), "threads": 1, "repeats": args.repeats,
              "updates": args.updates, "note": args.note, "updates_ms": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "layer_norm_fold.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# A LayerNorm's affine part on the rows or folded into the next layer ({result['date']}, "
             f"{result['cpu']}, 1 thread)", "",
             f"`python benchmarks/bench_layer_norm_fold.py --repeats {args.repeats} --updates {args.updates}`; "
             f"medians of {args.repeats} alternating rounds, CPU time of the process"
             + (f"; {args.note}" if args.note else "") + ".", "",
             "| agent | batch | ms per update, affine on the rows | ms per update, folded | speed-up |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['agent']} | {r['batch']} | {r['on_rows_ms']:.1f} | {r['folded_ms']:.1f} | {r['speedup']:.2f}x |"
              for r in rows]
    (RESULTS / "layer_norm_fold.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
