"""``offrl export``: a trained policy as one standalone TorchScript or ONNX file."""

from __future__ import annotations

import argparse

from offrl.cli.parser import OneLineParser
from offrl.tools.export import FORMATS, export_run


def parse_args(argv: list[str]):
    parser = OneLineParser(
        prog="offrl export", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a trained policy (observation normaliser + deterministic actor + rescaling onto the "
                    "env's action bounds) as one standalone file that runs without offrl; checks it against the "
                    "agent and records the spaces it expects in <out>.json.",
        epilog="""examples:
  offrl export <run dir> --format torchscript        <run dir>/policy_last.pt: torch.jit.load(file)(obs)
  offrl export <run dir> --format onnx --out p.onnx  onnxruntime: session.run(["action"], {"obs": obs})
  offrl export <run dir> --format onnx --checkpoint best""")
    parser.add_argument("run_dir", help="a run directory written by offrl train")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS), help="torchscript or onnx")
    parser.add_argument("--out", default=None,
                        help="output file (default <run dir>/policy_<checkpoint>.pt or .onnx); record in <out>.json")
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or step_N (a snapshot)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    try:
        args = parse_args(list(argv))
        record = export_run(args.run_dir, args.format, args.out, args.checkpoint)
    except SystemExit as exit_:  # --help, or a usage error already printed (OffrlErrors: offrl.cli.main prints them)
        return exit_.code if isinstance(exit_.code, int) else 0
    check = record["verification"]
    checked = (f"matches the agent to {check['max_abs_diff']:.1g} (tolerance {check['tolerance']:g})"
               if check["checked"] else f"not checked: {check['reason']}")
    obs, act = record["observation_space"]["shape"], record["action_space"]["shape"]
    print(f"offrl: exported {record['agent']} ({record['checkpoint']}, global step {record['global_step']}) as "
          f"{record['format']} to {record['file']}: obs (batch, {', '.join(map(str, obs))}) float32 -> action "
          f"(batch, {', '.join(map(str, act))}) for {record['env_id']}; {checked}; spaces in {record['sidecar']}")
    return 0
